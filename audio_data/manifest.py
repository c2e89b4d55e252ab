"""--manifest FILE.csv: the recordings as a lab keeps them, one row each, in place of the folder layout.

Columns (a header row first; names in any case):
    path       the recording, relative to the manifest's folder (or absolute)
    class      the class's name, and/or
    angle      its angle in degrees: classes are then named by their angles (deg030, as folders are) and ordered
               by them; a `class` column beside it must give one name per angle and is kept as `class_name`
    material   optional (default: any)
    frequency  optional, any label (default: any)
    group      optional: a take, placement or session that the split never divides
    split      optional: train, val or test, fixing the split by hand (then every row has one)
Every other column is kept and carried to the run's scores.csv and predict.py's CSV. Errors name the row (as a
spreadsheet numbers it: the header is row 1) and the column.

`--write-manifest FILE` writes the manifest of a folder layout (`write_manifest`).
"""

import csv
import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from audio_data.audio import is_audio
from audio_data.classes import angle_class, class_angle, class_folders
from audio_data.naming import recording_labels
from utils.errors import InputError
from utils.io_utils import MB, atomic_path, read_regular
from utils.run_paths import MAX_NAME, NAME_PART

COLUMNS = ("path", "class", "angle", "material", "frequency", "group", "split")
SPLITS = ("train", "val", "test")
ANY = "any"  # the material or frequency of a manifest without that column
MANIFEST_LIMIT = 64 * MB


@dataclass(frozen=True)
class Row:
    path: Path
    class_name: str
    material: str
    frequency: str
    group: str | None
    split: str | None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """The rows of a manifest file, its SHA-256, and the classes in rank order."""
    path: Path
    sha256: str
    rows: list[Row]
    classes: list[str]
    extra_columns: list[str]

    @property
    def materials(self) -> list[str]:
        return list(dict.fromkeys(row.material for row in self.rows))

    @property
    def frequencies(self) -> list[str]:
        return list(dict.fromkeys(row.frequency for row in self.rows))

    @property
    def has_splits(self) -> bool:
        return any(row.split is not None for row in self.rows)


class RowReader:
    """One data row's cells, each read with the error that names its row and column."""

    def __init__(self, manifest: Path, number: int, cells: dict[str, str]):
        self.manifest, self.number, self.cells = manifest, number, cells

    def error(self, column: str, problem: str) -> InputError:
        return InputError(f"--manifest {self.manifest} row {self.number}, column {column}: {problem}")

    def text(self, column: str) -> str | None:
        value = (self.cells.get(column) or "").strip()
        return value or None

    def name(self, column: str, default: str | None = None) -> str | None:
        """A name used in folder names and tables: letters, digits, '.', '_', '+', '-'."""
        value = self.text(column)
        if value is None:
            return default
        if not NAME_PART.fullmatch(value) or len(value) > MAX_NAME:
            raise self.error(column, f"{value[:60]!r} is not a name of letters, digits, '.', '_', '+', '-' "
                                     f"({MAX_NAME} characters at most)")
        return value

    def angle(self) -> float | None:
        value = self.text("angle")
        if value is None:
            return None
        try:
            angle = float(value)
        except ValueError:
            raise self.error("angle", f"{value[:60]!r} is not a number of degrees") from None
        if not math.isfinite(angle):
            raise self.error("angle", f"{value!r} is not a finite number of degrees")
        return angle

    def path(self, seen: dict[Path, int]) -> Path:
        value = self.text("path")
        if value is None:
            raise self.error("path", "empty")
        path = Path(value) if Path(value).is_absolute() else self.manifest.parent / value
        if not path.is_file():
            raise self.error("path", f"{path}: no such file")
        if (first := seen.setdefault(path.resolve(), self.number)) != self.number:
            raise self.error("path", f"{value} is listed on row {first} too")
        return path


def manifest_text(path: Path) -> tuple[str, str]:
    """The manifest's text and the SHA-256 of its bytes."""
    data = read_regular(path, MANIFEST_LIMIT)
    try:
        return data.decode("utf-8-sig"), hashlib.sha256(data).hexdigest()
    except UnicodeDecodeError:
        raise InputError(f"--manifest {path}: not UTF-8 text") from None


def manifest_rows(path: Path, required: set[str]) -> tuple[str, list[str], csv.DictReader]:
    """The manifest's SHA-256, its header (names stripped, in lower case) and a reader of its data rows."""
    text, sha256 = manifest_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    if "path" not in header or required and not required & set(header):
        also = f" and one of {', '.join(sorted(required))}" if required else ""
        raise InputError(f"--manifest {path}: the header row needs a path column{also} (found: "
                         f"{', '.join(header) or 'none'})")
    if len(set(header)) != len(header):
        raise InputError(f"--manifest {path}: a column name appears twice in the header row")
    reader.fieldnames = header
    return sha256, header, reader


def unlabelled_manifest(path: str | Path) -> tuple[list[Path], list[dict[str, str]]]:
    """predict.py's manifest: each row's recording (the path column, checked as in a run's manifest) and its other
    columns, kept as they are."""
    path, recordings, extra, seen = Path(path), [], [], {}
    _, header, reader = manifest_rows(path, set())
    for number, cells in enumerate(reader, start=2):
        if None in cells:
            raise InputError(f"--manifest {path} row {number}: more cells than the header has columns")
        recordings.append(RowReader(path, number, cells).path(seen))
        extra.append({name: cells.get(name) or "" for name in header if name != "path"})
    if not recordings:
        raise InputError(f"--manifest {path}: no recordings (a header row alone)")
    return recordings, extra


def read_manifest(path: str | Path, classes: str | None = None) -> Manifest:
    """The manifest at `path`, checked row by row; `classes` (--classes) gives the rank order of named classes
    without angles. InputError naming the row and column of the first problem."""
    path = Path(path)
    sha256, header, reader = manifest_rows(path, {"class", "angle"})
    extra_columns = [name for name in header if name not in COLUMNS]
    if "angle" in header and "class" in header:
        extra_columns.append("class_name")
    rows, angles, seen = [], {}, {}
    for number, cells in enumerate(reader, start=2):
        if None in cells:
            raise InputError(f"--manifest {path} row {number}: more cells than the header has columns")
        cell = RowReader(path, number, cells)
        recording = cell.path(seen)
        angle, named = cell.angle(), cell.name("class")
        if "angle" in header and angle is None:
            raise cell.error("angle", "empty, but the manifest gives the classes by angle")
        if angle is None and named is None:
            raise cell.error("class", "empty: every recording needs its class")
        class_name = angle_class(angle) if angle is not None else named
        extra = {name: cells.get(name) or "" for name in header if name not in COLUMNS}
        if angle is not None and named is not None:
            if angles.setdefault(named, (angle, number))[0] != angle:
                raise cell.error("angle", f"class {named} has angle {angle:g} here and "
                                          f"{angles[named][0]:g} on row {angles[named][1]}")
            extra["class_name"] = named
        split = cell.text("split")
        if split is not None and split.lower() not in SPLITS:
            raise cell.error("split", f"{split[:60]!r} is not one of {', '.join(SPLITS)}")
        rows.append(Row(recording, class_name, cell.name("material", ANY), cell.name("frequency", ANY),
                        cell.text("group"), split and split.lower(), extra))
    if not rows:
        raise InputError(f"--manifest {path}: no recordings (a header row alone)")
    check_names_by_angle(path, rows)
    if "split" in header and (unsplit := next((i for i, row in enumerate(rows) if row.split is None), None)) \
            is not None:
        raise InputError(f"--manifest {path} row {unsplit + 2}, column split: empty, but other rows fix the split "
                         "(train, val or test on every row)")
    return Manifest(path, sha256, rows, manifest_classes(path, rows, classes), extra_columns)


def check_names_by_angle(path: Path, rows: list[Row]) -> None:
    """With both columns, one class name per angle."""
    names: dict[str, tuple[str, int]] = {}
    for number, row in enumerate(rows, start=2):
        name = row.extra.get("class_name")
        if name is not None and names.setdefault(row.class_name, (name, number))[0] != name:
            raise InputError(f"--manifest {path} row {number}, column class: {name} and {names[row.class_name][0]} "
                             f"(row {names[row.class_name][1]}) have the same angle")


def manifest_classes(path: Path, rows: list[Row], classes: str | None) -> list[str]:
    """The classes in rank order: --classes as given, else by angle (from the angle column or the names)."""
    present = list(dict.fromkeys(row.class_name for row in rows))
    if classes is None:
        unordered = [name for name in present if class_angle(name) is None]
        if unordered:
            raise InputError(f"--manifest {path}: classes without an angle ({', '.join(unordered[:5])}); add an "
                             "angle column or give the rank order with --classes")
        by_angle = sorted(present, key=class_angle)
        if len({class_angle(name) for name in present}) < len(present):
            raise InputError(f"--manifest {path}: two classes at the same angle; give the order with --classes")
        return by_angle
    names = classes.split(",")
    if missing := [name for name in names if name not in present]:
        raise InputError(f"--classes: the manifest {path} has no recordings of class {', '.join(missing)}")
    return names


def write_manifest(root: Path, out: Path) -> int:
    """The manifest of every recording in a folder layout under `root` (classes named by their folders, whose names
    carry their angles), paths relative to `out`'s folder; the number of rows. Written atomically; an existing file
    is not replaced."""
    if out.exists():
        raise InputError(f"--write-manifest {out}: the file exists; give a new name")
    rows = []
    for class_name in class_folders(root, [p.name for p in root.glob("*/*") if p.is_dir()]):
        for folder in sorted(p for p in (root / class_name).iterdir() if p.is_dir()):
            for recording in sorted(p for p in folder.iterdir() if p.is_file() and is_audio(p)):
                frequency = recording_labels(str(recording))["frequency"] or ANY
                rows.append([relative_to(recording, out.parent), class_name, folder.name, frequency,
                             recording.stem.rsplit("_", 1)[-1]])
    if not rows:
        raise InputError(f"--data-root {root}: no recordings in <class>/<material>/ folders")
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "class", "material", "frequency", "seq"])
        writer.writerows(rows)
    return len(rows)


def relative_to(path: Path, folder: Path) -> str:
    """`path` relative to `folder` (with ../ where it lies elsewhere), so that the two can move together."""
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def select_rows(manifest: Manifest, classes: list[str], frequencies: list[str],
                materials: list[str]) -> list[tuple[int, Row]]:
    """(class index, row) of the rows of the run's classes, frequencies and materials: class by class, each class's
    rows in manifest order. A class with none of them is a warning; fewer than two classes an error."""
    by_class: dict[str, list[Row]] = {name: [] for name in classes}
    for row in manifest.rows:
        if row.class_name in by_class and row.frequency in frequencies and row.material in materials:
            by_class[row.class_name].append(row)
    at = "/".join(frequencies)
    if empty := [name for name, rows in by_class.items() if not rows]:
        warnings.warn(f"--manifest {manifest.path}: no {'/'.join(materials)} recordings at {at} of class "
                      f"{', '.join(empty)}")
    if sum(bool(rows) for rows in by_class.values()) < 2:
        raise InputError(f"--manifest {manifest.path}: recordings of fewer than two classes at {at} "
                         f"({'/'.join(materials)}); ranking needs at least two")
    return [(label, row) for label, name in enumerate(classes) for row in by_class[name]]
