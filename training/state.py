"""A run's state between epochs: the checkpoint built from it, written, and restored on --resume."""

import copy
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from audio_data.classes import class_table
from audio_data.loading import RunData
from config import RunConfig, from_stored, stored
from training.loop import Training
from training.named_runs import named_run_paths
from training.optim import fit_schedule_to_epochs
from utils import distributed
from utils.checkpoints import (CHECKPOINT_FORMAT, RESUME_KEYS, ResumeState, capture_rng, load_checkpoint,
                               restore_rng)
from utils.errors import InputError
from utils.history import history_problem, new_history
from utils.io_utils import atomic_path
from utils.run_paths import RunPaths, reserve_run, run_name_prefix

TRACKER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # MLflow's hex run ids, W&B's generated ones


@dataclass
class RunState:
    """Where a run stands: the last complete epoch, its history, wall time so far, its checkpoint, and the ids of
    its runs in the trackers --logger names (training/trackers.py)."""
    epoch: int
    history: dict
    elapsed: float
    checkpoint: dict
    trackers: dict[str, str] = field(default_factory=dict)


def training_checkpoint(t: Training, state: RunState, data: RunData, run: RunPaths, train: dict | None = None,
                        val: dict | None = None) -> dict:
    """The resume state and the epoch's figures, copied so that training can go on: a plain dict."""
    resume = ResumeState(
        epoch=state.epoch, model_state_dict=t.model.state_dict(), optimizer_state_dict=t.optimizer.state_dict(),
        scheduler_state_dict={} if t.scheduler is None else t.scheduler.state_dict(),
        scaler_state_dict=t.scaler.state_dict(),
        ghm_state_dict=None if t.losses.ghm is None else t.losses.ghm.state_dict(), args=state.history["args"],
        val_recordings=data.val_paths, history=state.history, rng=capture_rng(),
        loader_rng=[loader.generator.get_state() for loader in data.loaders],
        run={"name": run.name, "timestamp": run.timestamp}, elapsed_s=state.elapsed)
    return copy.deepcopy({"format_version": CHECKPOINT_FORMAT,
                          **{field.name: getattr(resume, field.name) for field in fields(resume)},
                          "train_loss": train and train["loss_main"], "train_accuracy": train and train["accuracy"],
                          "val_loss": val and val["loss_main"], "val_accuracy": val and val["accuracy"],
                          "classes": class_table(data.recordings.classes),
                          "audio": {"sample_rate": data.recordings.sample_rate, "samples": data.recordings.length},
                          **({"trackers": state.trackers} if state.trackers else {}),
                          **({"manifest_sha256": sha256} if (sha256 := data.recordings.manifest_sha256) else {})})


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def add_calibration(path: Path, calibration: dict) -> None:
    """Store a model's score-to-angle calibration (plain lists and floats) in the checkpoint this run wrote."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    save_checkpoint(path, {**checkpoint, "calibration": calibration})


def restore_training(path: Path, checkpoint: dict, t: Training, data: RunData) -> RunState:
    """Load weights, optimizer, scheduler, GHM state and every random state; clear errors for mismatches.

    The run keeps a copy of the checkpoint to write back if it stops before its next epoch ends: the optimizer
    and scheduler keep references into the dict they load, and training must not change the saved state.
    """
    saved = copy.deepcopy(checkpoint)
    if (used := checkpoint.get("manifest_sha256")) != (now := data.recordings.manifest_sha256):
        raise InputError(f"--resume {path}: the manifest is not the one the run used (its SHA-256 was "
                         f"{used or 'none'}, is {now or 'none'})")
    if checkpoint["val_recordings"] != data.val_paths:
        raise InputError(f"--resume {path}: the recordings are not the ones the run used (the data folder changed?)")
    if problem := history_problem(checkpoint["history"]):
        raise InputError(f"--resume {path}: its history is damaged ({problem})")
    ghm = t.losses.ghm
    if (ghm is None) != (checkpoint["ghm_state_dict"] is None):
        raise InputError(f"--resume {path}: the checkpoint {'lacks' if ghm else 'has'} a GHM state")
    parts = [("model", t.model.load_state_dict, checkpoint["model_state_dict"]),
             ("GHM state", ghm and ghm.load_state_dict, checkpoint["ghm_state_dict"]),
             ("optimizer state", t.optimizer.load_state_dict, checkpoint["optimizer_state_dict"]),
             ("scheduler state", t.scheduler and t.scheduler.load_state_dict, checkpoint["scheduler_state_dict"]),
             ("gradient scaler state", t.scaler.load_state_dict, checkpoint["scaler_state_dict"]),
             ("loaders' random states", lambda states: restore_loader_rng(data.loaders, states),
              checkpoint["loader_rng"]),
             ("random states", restore_rng, checkpoint["rng"])]
    for what, load, state in parts:
        if load is None:
            continue
        try:
            load(state)
        except Exception as exc:  # a foreign state fails in many ways; each is this one error
            raise InputError(f"--resume {path}: its {what} does not fit this run "
                             f"({str(exc).strip().splitlines()[-1].strip() or type(exc).__name__})") from None
    return RunState(saved["epoch"], saved["history"], saved["elapsed_s"], saved, tracker_ids(path, saved))


def tracker_ids(path: Path, checkpoint: dict) -> dict[str, str]:
    """The checkpoint's tracked-run ids (none before --logger mlflow/wandb); InputError if they are not ids."""
    ids = checkpoint.get("trackers", {})
    if not (isinstance(ids, dict) and all(isinstance(key, str) and isinstance(value, str) and TRACKER_ID.fullmatch(
            value) for key, value in ids.items())):
        raise InputError(f"--resume {path}: its trackers entry is not a mapping of tracker names to run ids")
    return dict(ids)


def restore_loader_rng(loaders: tuple[DataLoader, DataLoader], states: list) -> None:
    if len(states) != len(loaders):
        raise ValueError(f"{len(states)} states for {len(loaders)} loaders")
    for loader, state in zip(loaders, states):
        loader.generator.set_state(state)


def new_run(cfg: RunConfig) -> RunPaths:
    """The folder --run-name names, or a new one named after the run's settings and its start time."""
    if cfg.run.run_name:
        return named_run_paths(cfg.run.save_dir, cfg.run.run_name)
    prefix = run_name_prefix(cfg.data.material, cfg.data.frequency, cfg.loss.type, cfg.loss.alpha, cfg.run.seed,
                             cfg.data.fold)
    return reserve_run(cfg.run.save_dir, prefix)


def start_run(cfg: RunConfig, t: Training, data: RunData) -> tuple[RunPaths, RunState]:
    """A new run folder and state at epoch 0, or the run and state that --resume names."""
    if cfg.run.resume:
        path = Path(cfg.run.resume)
        checkpoint = load_checkpoint(path, "--resume", RESUME_KEYS)
        try:
            run = RunPaths.of_checkpoint(path, checkpoint["run"])
        except InputError as exc:
            raise InputError(f"--resume {exc}") from None
        state = restore_training(path, checkpoint, t, data)
        fit_schedule_to_epochs(t.scheduler, cfg.optim)
        try:  # the history's settings in today's format, with the --epochs this run trains to
            state.history["args"] = stored(from_stored(state.history["args"]).with_values(epochs=cfg.optim.epochs))
        except ValueError as exc:
            raise InputError(f"--resume {path}: its history is damaged ({exc})") from None
        print(f"resuming run {run.name} after epoch {state.epoch} of {cfg.optim.epochs}", flush=True)
        return run, state
    run = distributed.broadcast_from_main(new_run(cfg) if distributed.is_main() else None)
    state = RunState(0, new_history(stored(cfg)), 0.0, {})
    state.checkpoint = training_checkpoint(t, state, data, run)
    return run, state
