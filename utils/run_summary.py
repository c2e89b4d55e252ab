"""summary.json: one run's arguments, status, headline figures, wall time and outputs, for sweep tables."""

import os
import socket
import time
from collections.abc import Callable

from utils.history import best_epoch
from utils.io_utils import save_json
from utils.run_paths import RunPaths


SUMMARY_FORMAT = 2  # 1: summaries without a format_version entry; 2: with it (2026-11-26)
HEARTBEAT_S = 60.0


class Heartbeat:
    """Calls `write` (which rewrites a running run's summary.json) at most every `interval` seconds; called
    after every training step, so that a long first epoch is not taken for a dead run."""

    def __init__(self, write: Callable[[], None], interval: float = HEARTBEAT_S):
        self.write, self.interval, self.last = write, interval, time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last >= self.interval:
            self.write()
            self.last = time.monotonic()


def write_summary(run: RunPaths, history: dict, status: str, started: float, error: str | None = None,
                  evaluation: dict | None = None) -> None:
    """Write `<run>/summary.json`; status is running, completed, failed or interrupted.

    `pid`, `host` and `heartbeat` (Unix time of this write; a running run writes at its start and after every
    epoch) let `utils.summarize` tell a run that still runs from one whose process was killed.
    """
    best_acc, best_acc_epoch = best_epoch(history["val_accuracy"], max)
    best_loss, best_loss_epoch = best_epoch(history["val_loss_main"], min)
    last = {key: history[key][-1] if history[key] else None
            for key in ("train_loss_main", "train_accuracy", "val_loss_main", "val_accuracy")}
    save_json({
        "format_version": SUMMARY_FORMAT, "run": run.name, "status": status, "error": error, "args": history["args"],
        "epochs_done": len(history["epoch"]), "final": last,
        "best_val_accuracy": best_acc, "best_val_accuracy_epoch": best_acc_epoch,
        "best_val_loss": best_loss, "best_val_loss_epoch": best_loss_epoch,
        "evaluation": evaluation, "wall_time_s": round(time.time() - started, 3),
        "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time(),
        "outputs": {"checkpoints": sorted(str(p) for p in run.checkpoints.glob("model_epoch_*.pt")),
                    "history": str(run.history), "history_plot": str(run.history_plot),
                    "stats": str(run.stats) if run.stats.is_dir() else None,
                    "evaluation": str(run.evaluation) if evaluation else None},
    }, run.summary)
