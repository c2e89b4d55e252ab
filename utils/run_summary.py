"""summary.json, written and read: one run's arguments, status, headline figures, wall time and outputs (for
sweep tables and for the requeue of a named run)."""

import json
import os
import socket
import time
from pathlib import Path

from config import RunConfig
from utils.errors import InputError
from utils.history import best_epoch, early_stop_reason, epochs_done, monitor_best
from utils.io_utils import MB, format_problem, read_regular, save_json
from utils.run_paths import RunPaths


# 1: summaries without a format_version entry; 2: with it; 3: evaluation of the chosen (best) model with the last
# model's beside it, monitor and end_reason (2026-11-26)
SUMMARY_FORMAT = 3
HEARTBEAT_S = 60.0
SUMMARY_LIMIT = 64 * MB  # the largest summary.json read (a run's is a few kB)


def end_reason(history: dict, cfg: RunConfig, status: str) -> str | None:
    """Why a completed run ended: all its epochs, or early stopping."""
    if status != "completed":
        return None
    return early_stop_reason(history, cfg.optim) or f"trained all {cfg.optim.epochs} epochs"


class RunSummary:
    """`<run>/summary.json` of a run of `cfg` with these classes (`class_table`'s rows), started at `started`
    (Unix time), and with grouped recordings the groups of each split: written at the start, after every epoch
    (and by the heartbeat between steps) and at the end."""

    def __init__(self, run: RunPaths, cfg: RunConfig, classes: list[dict], started: float,
                 groups: dict[str, list[str]] | None = None):
        self.run, self.cfg, self.classes, self.started, self.groups = run, cfg, classes, started, groups

    def record(self, history: dict, status: str, error: str | None = None, evaluation: dict | None = None) -> dict:
        """The content of summary.json; status is running, completed, failed or interrupted.

        `pid`, `host` and `heartbeat` (Unix time of this write) let `utils.summarize` tell a run that still runs
        from one whose process was killed.
        """
        run, monitor = self.run, self.cfg.optim.monitor
        best_acc, best_acc_epoch = best_epoch(history, "val_accuracy", max)
        best_loss, best_loss_epoch = best_epoch(history, "val_loss_main", min)
        monitored, monitored_epoch = monitor_best(history, monitor)
        last = {key: history[key][-1] if history[key] else None
                for key in ("train_loss_main", "train_accuracy", "val_loss_main", "val_accuracy")}
        return {
            "format_version": SUMMARY_FORMAT, "run": run.name, "timestamp": run.timestamp, "status": status,
            "error": error, "args": history["args"], "classes": self.classes,
            **({"groups": self.groups} if self.groups else {}),
            "epochs_done": epochs_done(history), "final": last,
            "best_val_accuracy": best_acc, "best_val_accuracy_epoch": best_acc_epoch,
            "best_val_loss": best_loss, "best_val_loss_epoch": best_loss_epoch,
            "monitor": {"name": monitor, "best": monitored, "best_epoch": monitored_epoch},
            "end_reason": end_reason(history, self.cfg, status),
            "evaluation": evaluation, "wall_time_s": round(time.time() - self.started, 3),
            "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time(),
            "outputs": {"checkpoints": [str(p) for p in run.checkpoint_files().values()],
                        "history": str(run.history), "history_plot": str(run.history_plot),
                        "best_checkpoint": str(run.best_checkpoint) if run.best_checkpoint.is_file() else None,
                        "stats": str(run.stats) if run.stats.is_dir() else None,
                        "evaluation": str(run.evaluation) if evaluation else None,
                        "evaluation_best": str(run.evaluation_best) if evaluation and run.evaluation_best.is_dir()
                        else None},
        }

    def write(self, history: dict, status: str, error: str | None = None, evaluation: dict | None = None) -> dict:
        """Write summary.json (see `record`) and return its content."""
        record = self.record(history, status, error, evaluation)
        save_json(record, self.run.summary)
        return record


def summary_problem(summary: object) -> str | None:
    """What makes a parsed summary.json not one this program writes (None if it is one)."""
    if not isinstance(summary, dict):
        return "not a JSON object"
    if problem := format_problem(summary, SUMMARY_FORMAT):
        return problem
    kinds = {"run": str, "status": str, "args": dict, "epochs_done": int, "final": dict, "wall_time_s": (int, float)}
    wrong = [key for key, kind in kinds.items() if not isinstance(summary.get(key), kind)]
    if wrong:
        return f"{', '.join(wrong)} missing or of the wrong type"
    if not isinstance(summary.get("evaluation") or {}, dict):
        return "evaluation is not a JSON object"
    return None


def read_summary(path: Path) -> dict:
    """A summary.json this program writes; InputError naming the file and what is wrong with it otherwise."""
    try:
        summary = json.loads(read_regular(path, SUMMARY_LIMIT).decode("utf-8"))
    except RecursionError:
        raise InputError(f"{path}: cannot be read as JSON (nested too deeply)") from None
    except ValueError as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as JSON ({reason})") from None
    if problem := summary_problem(summary):
        raise InputError(f"{path}: {problem}")
    return summary
