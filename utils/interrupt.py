"""SIGINT / SIGTERM: the first asks training to stop after the current step, a second aborts at once.

Under SLURM, SIGUSR1 (the signal `#SBATCH --signal=B:USR1@120` sends before the time limit) stops the same way;
the entry point then requeues the job (utils/slurm.py)."""

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGUSR1: 128 + signal.SIGUSR1}
NOTICES = {signal.SIGUSR1: "the job's time limit is near: stopping after the current step to requeue it"}


class TrainingInterrupted(BaseException):
    """Raised between steps after a signal; a BaseException so that no `except Exception` swallows it."""

    def __init__(self, signum: int, aborted: bool = False):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.aborted = aborted
        self.exit_code = EXIT_CODES[signum]


_requested: int | None = None
_owner = os.getpid()


def _handle(signum: int, _frame) -> None:
    global _requested
    if os.getpid() != _owner:  # a forked loader worker: the main process decides, the worker goes on
        return
    if _requested is not None:
        raise TrainingInterrupted(signum, aborted=True)
    _requested = signum
    notice = NOTICES.get(signum, "stopping after the current step (send it again to abort at once)")
    print(f"\n{signal.Signals(signum).name}: {notice}", file=sys.stderr, flush=True)


@contextmanager
def stop_on_signals(usr1: bool = False) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM (and SIGUSR1 with `usr1`) go to the handler above (main thread only);
    restored after."""
    global _requested, _owner
    _requested, _owner = None, os.getpid()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    signums = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGUSR1] if usr1 else [])
    previous = {signum: signal.signal(signum, _handle) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested = None


def check(agree: Callable[[bool], bool] = bool) -> None:
    """Raise TrainingInterrupted if a signal arrived; call between training steps.

    `agree` turns this process's answer into the decision of all processes (under torchrun, any of them).
    """
    if agree(_requested is not None):
        raise TrainingInterrupted(_requested or signal.SIGTERM)
