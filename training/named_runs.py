"""--run-name: a fixed run folder, so that the same command after a preemption resumes the run (or reports it
finished) instead of starting a new one."""

import json
from pathlib import Path

from analysis.evaluation import HEADLINE
from analysis.sweep import summary_problem
from training.cli import RESUME_OVERRIDES, changed_argument, saved_args_problem, saved_run_args
from utils.checkpoints import RESUME_KEYS, load_checkpoint, newest_checkpoint
from utils.errors import InputError
from utils.history import early_stop_reason
from utils.run_paths import CHECKPOINTS, TIMESTAMP, RunPaths, now


def run_folder_name(run_name: str, frequency_flag: str, frequency: str) -> str:
    """NAME, or NAME_<frequency> for each frequency of --frequency all."""
    return f"{run_name}_{frequency}" if frequency_flag == "all" else run_name


def named_run(run_args: dict) -> tuple[dict, dict | None]:
    """The arguments to train the named run with, and its summary if it has finished already.

    Without a checkpoint in its folder: `run_args` themselves (a new run). With one: the arguments of resuming
    the newest (the same checks as --resume; a different argument is an error naming both values; a larger
    --epochs extends the run).
    """
    name = run_args["run_name"]
    folder = Path(run_args["save_dir"]) / CHECKPOINTS / name
    if not folder.is_dir() or not any(folder.glob("model_epoch_*.pt")):
        return run_args, None
    path = newest_checkpoint(folder, "--run-name")
    checkpoint = load_checkpoint(path, "--run-name", RESUME_KEYS)
    saved, done = saved_run_args(checkpoint), checkpoint["epoch"]
    if problem := saved_args_problem(saved):
        raise InputError(f"--run-name {name}: {path} is not a checkpoint this program can resume ({problem})")
    if key := changed_argument(run_args, saved):
        raise InputError(f"--{key.replace('_', '-')} {run_args[key]}: run {name} in {folder} was trained with "
                         f"{saved[key]}; the same command resumes it (it may change {', '.join(RESUME_OVERRIDES[1:])})")
    if run_args["epochs"] < done:
        raise InputError(f"--epochs {run_args['epochs']}: run {name} in {folder} has already trained {done} epochs")
    resumed = {**run_args, **{k: v for k, v in saved.items() if k not in RESUME_OVERRIDES}, "resume": str(path)}
    if done < run_args["epochs"] and early_stop_reason(checkpoint["history"]) is None:
        return resumed, None
    return resumed, finished_summary(RunPaths.of_checkpoint(path, checkpoint["run"]), done)


def read_summary(run: RunPaths) -> dict | None:
    """The run's summary.json if it is one this program writes, else None."""
    try:
        summary = json.loads(run.summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if summary_problem(summary) else summary


def finished_summary(run: RunPaths, done: int) -> dict | None:
    """The summary of a run whose training and final evaluation both completed after `done` epochs; None if the
    final evaluation is still to do (it was interrupted, or summary.json is unusable)."""
    summary = read_summary(run)
    if summary is None or summary["status"] != "completed" or summary["epochs_done"] != done:
        return None
    figures = [summary.get("best_val_accuracy"), summary["final"].get("val_accuracy"),
               *((summary.get("evaluation") or {}).get(key) for key in HEADLINE)]
    return summary if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in figures) else None


def named_run_paths(save_dir: str, name: str) -> RunPaths:
    """The folder of a new named run. A run killed before its first checkpoint left a summary.json: its timestamp
    is kept, so that the files of the run (statistics, plots) keep one name."""
    summary = read_summary(RunPaths(Path(save_dir), name, now()))
    timestamp = summary.get("timestamp") if summary else None
    run = RunPaths(Path(save_dir), name, timestamp if isinstance(timestamp, str) and TIMESTAMP.fullmatch(timestamp)
                   else now())
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    return run
