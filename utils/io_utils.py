"""Writing files so that a crash, a power loss or a full disk never leaves a partial file under the final name."""

import json
import os
import pickle
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a new temporary path beside `path`; if the block succeeds it is flushed to disk and renamed to `path`.

    The temporary file is created with mode 0o666, so the process's umask applies as for any new file (without
    touching the process-wide umask); its name is unique per call, so threads and processes never share one.
    After the rename the folder is flushed too, so the new name survives a power loss.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    finally:
        tmp.unlink(missing_ok=True)


def format_problem(record: dict, current: int) -> str | None:
    """A file's `format_version` (1 where it has none, as before versions were written) that this program cannot
    read: not an integer, or newer than `current`."""
    version = record.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"format_version {version!r} is not a version"
    if version > current:
        return f"format version {version}, written by a newer version of this program (this one reads up to {current})"
    return None


def save_pickle(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def save_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def save_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
