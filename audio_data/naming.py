"""The recording file name, `<material>_<class>_<freq>_<seq>.wav` in `<data-root>/<class>/<material>/` (read with
any audio file ending: audio_data/audio.py): written and parsed here only."""

from pathlib import Path

SUFFIX = ".wav"


def recording_name(material: str, class_name: str, frequency: str, seq: str) -> str:
    return f"{material}_{class_name}_{frequency}_{seq}{SUFFIX}"


def recording_prefix(material: str, class_name: str, frequency: str) -> str:
    """What every file name of one material, class and frequency starts with; the sequence number follows."""
    return recording_name(material, class_name, frequency, "")[:-len(SUFFIX)]


def recording_labels(path: str) -> dict[str, str]:
    """class, material and frequency from the file name (else class and material from the folders)."""
    p = Path(path)
    parts = p.stem.split("_")
    if len(parts) == 4:
        return {"class": parts[1], "material": parts[0], "frequency": parts[2]}
    return {"class": p.parent.parent.name, "material": p.parent.name, "frequency": ""}
