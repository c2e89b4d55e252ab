"""Writing files so that a crash, a power loss or a full disk never leaves a partial file under the final name,
and reading files that another user may have put there without hanging or filling memory."""

import json
import os
import pickle
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from utils.errors import InputError

MB = 2**20


def make_folder(path: str | Path, exist_ok: bool = True) -> Path:
    """`path` made with its parents; one InputError naming it when it cannot be (with `exist_ok` False, an existing
    `path` raises FileExistsError, for a caller that reserves folders by creating them)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok:
            raise
        raise InputError(f"{path}: exists and is not a folder") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be made ({exc.strerror or exc})") from None
    return Path(path)


def output_folder(path: str | Path, flag: str = "--out") -> Path:
    """A folder a command writes its files into; InputError when `path` exists as something else (a file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path}: not a folder")
    return path


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; one InputError naming the file otherwise (a folder, a
    FIFO or device, which could block or never end, a larger file, an unreadable one). Opened without blocking and
    checked on the open descriptor, so a file swapped for a FIFO after a check cannot hang the reader."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit // MB} MB, more than a file of this kind holds")
    return data


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
    After the rename the folder is flushed too, so the new name survives a power loss. A place that cannot be
    written (a read-only folder, a path under a file, a name too long, a full disk) is one InputError naming `path`.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise InputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
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
