"""What the data holds: the angle classes in rank order, their angles, and the frequencies of a material's
recordings. The data, not the code, decide."""

import re
from pathlib import Path

from audio_data.audio import is_audio
from audio_data.naming import recording_labels
from utils.errors import InputError

ANGLE = re.compile(r"[-+]?\d+(?:\.\d+)?")
FREQUENCY = re.compile(r"(\d+(?:\.\d+)?)hz")


def class_angle(name: str) -> float | None:
    """The number in a class folder's name, taken as its angle in degrees (deg036 → 36, deg-30 → −30,
    az045 → 45); None if the name holds no number."""
    match = ANGLE.search(name)
    return float(match.group()) if match else None


def angle_class(angle: float) -> str:
    """deg000, deg030, deg-30, deg022.5: the name of the class (folder) at `angle` degrees."""
    return f"deg{angle:03.0f}" if float(angle).is_integer() and angle >= 0 else f"deg{angle:g}"


def class_folders(root: Path, materials: list[str]) -> list[str]:
    """The folders under `root` that hold a folder of one of the materials."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / m).is_dir() for m in materials))


def order_classes(names: list[str]) -> list[str]:
    """Class folder names in rank order: by the angle in their names. Names without a number, or two names at
    the same angle, cannot be ordered: an InputError that lists them and points to --classes."""
    unordered = [name for name in names if class_angle(name) is None]
    if unordered:
        raise InputError(f"class folders without an angle in their name: {', '.join(unordered)}; give the classes "
                         "in rank order with --classes (e.g. --classes near,middle,far)")
    angles = [class_angle(name) for name in names]
    clashes = sorted({name for name, angle in zip(names, angles) if angles.count(angle) > 1})
    if clashes:
        raise InputError(f"class folders at the same angle: {', '.join(clashes)}; give the order with --classes")
    return sorted(names, key=class_angle)


def frequency_hz(frequency: str) -> float | None:
    """500hz → 500.0; None if the text is not a frequency of the form <N>hz."""
    match = FREQUENCY.fullmatch(frequency)
    return float(match.group(1)) if match else None


def find_frequencies(root: Path, classes: list[str], materials: list[str]) -> list[str]:
    """Every `<N>hz` in the names of the recordings of these classes and materials, lowest first."""
    found = set()
    for class_name in classes:
        for material in materials:
            folder = root / class_name / material
            for path in (p for p in (folder.iterdir() if folder.is_dir() else ()) if is_audio(p)):
                frequency = recording_labels(str(path))["frequency"]
                if frequency_hz(frequency) is not None:
                    found.add(frequency)
    return sorted(found, key=frequency_hz)


def run_classes(root: Path, material: str, classes: str | None) -> list[str]:
    """The classes of a run in rank order: --classes as given (each a folder holding one of the materials), or
    the class folders found, ordered by their angles."""
    materials = material.split(",")
    present = class_folders(root, materials)
    if classes is None:
        if not present:
            folders = " or ".join(f"<class>/{m}" for m in materials)
            raise InputError(f"--material {material}: no {folders} folder under {root}")
        return order_classes(present)
    names = classes.split(",")
    if missing := [name for name in names if name not in present]:
        raise InputError(f"--classes: no {material} folder under {root} for {', '.join(missing)}")
    if len(set(names)) != len(names) or len(names) < 2:
        raise InputError("--classes: give at least two classes, each once")
    return names


def class_table(classes: list[str]) -> list[dict]:
    """The classes as summary.json and checkpoints list them: name and angle in degrees (None without one)."""
    return [{"name": name, "angle": class_angle(name)} for name in classes]
