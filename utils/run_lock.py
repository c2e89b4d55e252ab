"""One process per run folder: `<run>/run.lock`, made atomically and kept fresh while the run lives.

The lock is written to a file of its own name and then hard-linked to `run.lock`: a link either creates the name or
fails, also on the NFS and Lustre file systems that clusters share, where O_EXCL and flock may not hold across
hosts. It holds the owner's pid, host, SLURM job id, a random token and a heartbeat (Unix time) that a daemon
thread renews every HEARTBEAT_S seconds, so a long phase without training steps (data loading, the final
evaluation) keeps it fresh. A lock whose process is gone from this host, whose heartbeat is older than STALE_S (its
process killed on another host), or that an earlier run of this same SLURM job left (SLURM never runs one job id
twice at once: a requeued job after a node failure) is taken over with a warning; any other lock is an InputError
naming its holder.
"""

import json
import os
import secrets
import socket
import threading
import time
import warnings
from pathlib import Path

from utils import slurm
from utils.errors import InputError
from utils.io_utils import make_folder, read_regular, save_json

LOCK_NAME = "run.lock"
HEARTBEAT_S = 30.0
STALE_S = 120.0


def process_gone(pid: object) -> bool:
    """Whether no process of this number runs on this machine (a process of another user counts as running)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def read_lock(path: Path) -> dict | None:
    """A lock file's content, or None where it cannot be read (gone, or not a lock this program wrote)."""
    try:
        held = json.loads(read_regular(path, 64 * 1024).decode("utf-8"))
    except (InputError, ValueError):
        return None
    return held if isinstance(held, dict) else None


class RunLock:
    """`acquire()` the lock of `folder` (made if missing), `release()` it; also a context manager."""

    def __init__(self, folder: Path):
        self.folder, self.path = Path(folder), Path(folder) / LOCK_NAME
        self.token = secrets.token_hex(8)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job": slurm.job_id(),
                "token": self.token, "heartbeat": time.time()}

    def holder(self) -> dict | None:
        return read_lock(self.path)

    def stale(self, held: dict | None) -> bool:
        """A lock nobody holds any more: its process gone from this host, or its heartbeat older than STALE_S
        (an unreadable lock by its file's age)."""
        if held is None:
            try:
                return time.time() - self.path.stat().st_mtime > STALE_S
            except OSError:
                return True
        if held.get("host") == socket.gethostname() and process_gone(held.get("pid")):
            return True
        if held.get("slurm_job") and held.get("slurm_job") == slurm.job_id():
            return True
        beat = held.get("heartbeat")
        return not isinstance(beat, (int, float)) or time.time() - beat > STALE_S

    def link(self) -> bool:
        """Make `run.lock` ours if no one holds the name; whether it was made."""
        mine = self.folder / f".{LOCK_NAME}.{self.token}"
        save_json(self.record(), mine)
        try:
            os.link(mine, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise InputError(f"{self.path}: cannot be made ({exc.strerror or exc})") from None
        finally:
            mine.unlink(missing_ok=True)

    def take_over(self, held: dict | None) -> bool:
        """Move a stale lock aside, unless it changed since it was read (then someone else holds it now)."""
        aside = self.folder / f".{LOCK_NAME}.stale.{self.token}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        if read_lock(aside) != held:
            os.rename(aside, self.path)
            return False
        aside.unlink(missing_ok=True)
        who = f"pid {held.get('pid')} on {held.get('host')}" if held else "an unreadable lock"
        warnings.warn(f"{self.path}: taking over the lock of {who}, which is no longer running")
        return True

    def acquire(self) -> "RunLock":
        make_folder(self.folder)
        for _ in range(3):
            if self.link():
                self.thread = threading.Thread(target=self.beat, name="run-lock", daemon=True)
                self.thread.start()
                return self
            held = self.holder()
            if not self.stale(held) or not self.take_over(held):
                who = (f"pid {held.get('pid')} on host {held.get('host')}" if held else "another process")
                raise InputError(f"{self.folder}: the run is in use by {who} ({self.path}); wait for it to end, or "
                                 "remove the lock if that process is gone")
        raise InputError(f"{self.path}: could not take the lock")

    def beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            if (self.holder() or {}).get("token") == self.token:
                try:
                    save_json(self.record(), self.path)
                except InputError:  # a full disk, say: the next beat tries again
                    pass

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if (self.holder() or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
