"""summary.json: one run's arguments, status, headline figures, wall time and outputs, for sweep tables."""

import os
import socket
import time
from collections.abc import Callable

from audio_data.classes import class_table
from config import RunConfig
from utils.history import best_epoch, early_stop_reason, monitor_best
from utils.io_utils import save_json
from utils.run_paths import RunPaths


# 1: summaries without a format_version entry; 2: with it; 3: evaluation of the chosen (best) model with the last
# model's beside it, monitor and end_reason (2026-11-26)
SUMMARY_FORMAT = 3
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


def end_reason(history: dict, cfg: RunConfig, status: str) -> str | None:
    """Why a completed run ended: all its epochs, or early stopping."""
    if status != "completed":
        return None
    return early_stop_reason(history, cfg.optim) or f"trained all {cfg.optim.epochs} epochs"


def summary_record(run: RunPaths, cfg: RunConfig, history: dict, status: str, started: float,
                   error: str | None = None, evaluation: dict | None = None) -> dict:
    """The content of `<run>/summary.json` of a run of `cfg`; status is running, completed, failed or interrupted.

    `pid`, `host` and `heartbeat` (Unix time of this write; a running run writes at its start and after every
    epoch) let `utils.summarize` tell a run that still runs from one whose process was killed.
    """
    best_acc, best_acc_epoch = best_epoch(history["val_accuracy"], max)
    best_loss, best_loss_epoch = best_epoch(history["val_loss_main"], min)
    monitored, monitored_epoch = monitor_best(history, cfg.optim.monitor)
    last = {key: history[key][-1] if history[key] else None
            for key in ("train_loss_main", "train_accuracy", "val_loss_main", "val_accuracy")}
    return {
        "format_version": SUMMARY_FORMAT, "run": run.name, "timestamp": run.timestamp, "status": status,
        "error": error, "args": history["args"], "classes": class_table(cfg.data.class_list),
        "epochs_done": len(history["epoch"]), "final": last,
        "best_val_accuracy": best_acc, "best_val_accuracy_epoch": best_acc_epoch,
        "best_val_loss": best_loss, "best_val_loss_epoch": best_loss_epoch,
        "monitor": {"name": cfg.optim.monitor, "best": monitored,
                    "best_epoch": monitored_epoch},
        "end_reason": end_reason(history, cfg, status),
        "evaluation": evaluation, "wall_time_s": round(time.time() - started, 3),
        "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time(),
        "outputs": {"checkpoints": sorted(str(p) for p in run.checkpoints.glob("model_epoch_*.pt")),
                    "history": str(run.history), "history_plot": str(run.history_plot),
                    "best_checkpoint": str(run.best_checkpoint) if run.best_checkpoint.is_file() else None,
                    "stats": str(run.stats) if run.stats.is_dir() else None,
                    "evaluation": str(run.evaluation) if evaluation else None,
                    "evaluation_best": str(run.evaluation_best) if evaluation and run.evaluation_best.is_dir()
                    else None},
    }


def write_summary(run: RunPaths, cfg: RunConfig, history: dict, status: str, started: float,
                  error: str | None = None, evaluation: dict | None = None) -> dict:
    """Write `<run>/summary.json` (see summary_record) and return its content."""
    record = summary_record(run, cfg, history, status, started, error, evaluation)
    save_json(record, run.summary)
    return record
