"""train.log: everything a run prints (stdout and stderr: progress lines, warnings, errors), one file per run,
even when several runs share a process in threads (the streams are wrapped once; each thread writes to the log
of its own run). What is printed before the run folder exists is kept and written when the log is attached."""

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from utils.errors import InputError

_local = threading.local()
_lock = threading.Lock()
_users = 0
_streams: tuple = ()


class _Tee:
    """A stream that also writes to the current thread's run log."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        log = getattr(_local, "log", None)
        if log is not None:
            log.write(text)
        return written

    def flush(self) -> None:
        self.stream.flush()
        log = getattr(_local, "log", None)
        if log is not None:
            log.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


class RunLog:
    """Text kept in memory until `attach` names the file; then appended to it (a resumed run continues its log)."""

    def __init__(self):
        self.buffer, self.file = io.StringIO(), None

    def write(self, text: str) -> None:
        (self.file or self.buffer).write(text)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def attach(self, path: Path) -> None:
        if self.file is None:
            try:
                self.file = open(path, "a", encoding="utf-8", errors="backslashreplace")
            except OSError as exc:
                raise InputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
            self.file.write(self.buffer.getvalue())
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@contextmanager
def capture() -> Iterator[RunLog]:
    """Within the block, what this thread prints also goes to a new RunLog."""
    global _users, _streams
    with _lock:
        if _users == 0:
            _streams = (sys.stdout, sys.stderr)
            sys.stdout, sys.stderr = _Tee(sys.stdout), _Tee(sys.stderr)
        _users += 1
    log = _local.log = RunLog()
    try:
        yield log
    finally:
        _local.log = None
        log.close()
        with _lock:
            _users -= 1
            if _users == 0:
                sys.stdout, sys.stderr = _streams
