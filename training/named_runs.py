"""--run-name: a fixed run folder, so that the same command after a preemption or a requeue resumes the run (or
reports it finished) instead of starting a new one."""

import sys
from pathlib import Path

from analysis.evaluation import HEADLINE
import config
from config import RunConfig
from losses import ghm_flag_problems
from training.cli import changed_setting, resumable_list
from utils import slurm
from utils.checkpoints import RESUME_KEYS, load_checkpoint, newest_checkpoint, stored_config
from utils.errors import InputError
from utils.history import early_stop_reason
from utils.io_utils import make_folder
from utils.run_paths import CHECKPOINTS, TIMESTAMP, RunPaths, epoch_checkpoints, now
from utils.run_summary import read_summary


def run_folder_name(run_name: str, frequency_flag: str, frequency: str, fold: int | None = None) -> str:
    """NAME, or NAME_<frequency> for each frequency of --frequency all; `_fold<k>` after it for fold k of --folds."""
    return (f"{run_name}_{frequency}" if frequency_flag == "all" else run_name) + (f"_fold{fold}" if fold else "")


def existing_run_folder(cfg: RunConfig) -> Path | None:
    """The folder of the run that --run-name or --resume names (None for a new run of its own folder)."""
    if cfg.run.resume:
        resume = Path(cfg.run.resume)
        return resume if resume.is_dir() else resume.parent
    return Path(cfg.run.save_dir) / CHECKPOINTS / cfg.run.run_name if cfg.run.run_name else None


def named_run(cfg: RunConfig) -> tuple[RunConfig, dict | None]:
    """The configuration to train the named run with, and its summary if it has finished already.

    Without a checkpoint in its folder: `cfg` itself (a new run). With one: the settings of resuming the newest
    (the same checks as --resume; a different setting is an error naming both values; a larger --epochs extends
    the run).
    """
    name = cfg.run.run_name
    folder = Path(cfg.run.save_dir) / CHECKPOINTS / name
    if not epoch_checkpoints(folder):
        return cfg, None
    path = newest_checkpoint(folder, "--run-name")
    checkpoint = load_checkpoint(path, "--run-name", RESUME_KEYS)
    saved_cfg = stored_config(checkpoint, f"--run-name {name}:", path, "a checkpoint this program can resume")
    given, saved, done = cfg.flat(), saved_cfg.flat(), checkpoint["epoch"]
    if key := changed_setting(given, saved):
        raise InputError(f"--{key.replace('_', '-')} {given[key]}: run {name} in {folder} was trained with "
                         f"{saved[key]}; the same command resumes it (it may change {resumable_list()})")
    if cfg.optim.epochs < done:
        raise InputError(f"--epochs {cfg.optim.epochs}: run {name} in {folder} has already trained {done} epochs")
    resumed = RunConfig.from_flat({**given, **{k: v for k, v in saved.items() if k not in config.RESUMABLE},
                                   "resume": str(path)})
    if problems := ghm_flag_problems(resumed.loss):
        flag, problem = next(iter(problems.items()))
        raise InputError(f"--run-name {name}: {path} holds {flag} that {problem}")
    if done < cfg.optim.epochs and early_stop_reason(checkpoint["history"], resumed.optim) is None:
        return resumed, None
    return resumed, finished_summary(RunPaths.of_checkpoint(path, checkpoint["run"]), done)


def usable_summary(run: RunPaths) -> dict | None:
    """The run's summary.json if it is one this program writes, else None."""
    try:
        return read_summary(run.summary)
    except InputError:
        return None


def finished_summary(run: RunPaths, done: int) -> dict | None:
    """The summary of a run whose training and final evaluation both completed after `done` epochs; None if the
    final evaluation is still to do (it was interrupted, or summary.json is unusable)."""
    summary = usable_summary(run)
    if summary is None or summary["status"] != "completed" or summary["epochs_done"] != done:
        return None
    figures = [summary.get("best_val_accuracy"), summary["final"].get("val_accuracy"),
               *((summary.get("evaluation") or {}).get(key) for key in HEADLINE)]
    return summary if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in figures) else None


def named_run_paths(save_dir: str, name: str) -> RunPaths:
    """The folder of a new named run. A run killed before its first checkpoint left a summary.json: its timestamp
    is kept, so that the files of the run (statistics, plots) keep one name."""
    summary = usable_summary(RunPaths(Path(save_dir), name, now()))
    timestamp = summary.get("timestamp") if summary else None
    run = RunPaths(Path(save_dir), name, timestamp if isinstance(timestamp, str) and TIMESTAMP.fullmatch(timestamp)
                   else now())
    make_folder(run.checkpoints)
    return run


def requeue_job(cfg: RunConfig, exit_code: int) -> int:
    """SIGUSR1 under SLURM (its time limit is near) stopped the run with its checkpoint written: queue the job again,
    whose same command resumes a --run-name run. The exit code: `exit_code`, or 1 if SLURM refused."""
    if not cfg.run.run_name:
        print("not requeued: without --run-name the same command would start a new run", file=sys.stderr)
        return exit_code
    try:
        slurm.requeue(slurm.job_id())
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"requeued SLURM job {slurm.job_id()}: its same command resumes the run", flush=True)
    return exit_code
