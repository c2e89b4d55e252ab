"""A checkpoint evaluated afterwards (evaluate.py, `python -m analysis.baselines`): its model, the recordings of a
split rebuilt from the run's settings, its calibration and the baselines fitted on the run's training recordings."""

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from analysis.baseline_rankers import run_baselines
from analysis.evaluation import Recordings, Report, evaluate_model
from analysis.run_calibration import checkpoint_calibration
from audio_data.loading import load_recordings, run_split
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from config import DataConfig, RunConfig
from models import check_input_size, checkpoint_model
from models.common import reads_features
from utils.checkpoints import checkpoint_run
from utils.common_utils import choose_device
from utils.errors import InputError


def select_recordings(recordings: SpectrogramDatasetWithMaterial, cfg: RunConfig, checkpoint: dict,
                      split: str) -> tuple[list[int], list[int]]:
    """(training, evaluated) indices: with split all every recording for both; else the run's training split and
    its validation or test split, checked against the validation paths the checkpoint recorded (the test split
    comes from the same seed and recordings)."""
    if split == "all":
        return list(range(len(recordings))), list(range(len(recordings)))
    splits = run_split(recordings, cfg.data, cfg.run.seed)
    if split == "test" and not splits.test:
        raise InputError("--split test: the run held out no test split (it trained without --test-fraction)")
    expected = checkpoint.get("val_recordings")
    if expected is not None and [recordings.paths[i] for i in splits.val] != list(expected):
        raise InputError("the validation recordings rebuilt from the checkpoint's seed are not the ones the run "
                         "used (the data folder changed?); use --split all")
    return splits.train, splits.test if split == "test" else splits.val


@dataclass
class Prepared:
    """A checkpoint's model on its device and the recordings to evaluate it on; `data` is the run's data settings
    with those given on the command line."""
    path: Path
    checkpoint: dict
    cfg: RunConfig
    data: DataConfig
    device: torch.device
    model: nn.Module
    recordings: SpectrogramDatasetWithMaterial
    train: list[int]
    evaluated: list[int]


def prepare(checkpoint_arg: str, split: str, data_root: str | None = None, frequency: str | None = None,
            material: str | None = None, model_name: str | None = None, device_name: str = "auto",
            manifest: str | None = None) -> Prepared:
    """Load a checkpoint (or a run folder's newest) and the recordings of `split` (the run's data, or the folder or
    manifest given); InputError when they do not fit."""
    path, checkpoint, cfg = checkpoint_run(checkpoint_arg)
    device = choose_device(device_name)
    model_name = model_name or cfg.model.name
    model = checkpoint_model(checkpoint, model_name, path, device)
    overrides = {key: value for key, value in (("root", data_root), ("material", material),
                                               ("frequency", frequency), ("manifest", manifest)) if value}
    data = replace(cfg.data, **overrides)
    if getattr(model, "subsets", 1) > 1 and data.subsets != cfg.data.subsets:
        raise InputError(f"--material/--frequency: the model pools {', '.join(cfg.data.subsets)} and scores "
                         "recordings of those (its report has each one's figures)")
    recordings = load_recordings(data)
    check_input_size(model_name, tuple(recordings.data.shape[1:]))
    if reads_features(model):
        recordings.load_features()
    train, evaluated = select_recordings(recordings, cfg, checkpoint, split)
    return Prepared(path, checkpoint, cfg, data, device, model, recordings, train, evaluated)


def evaluate_checkpoint(ready: Prepared, split: str) -> Report:
    """The checkpoint's model on the evaluated recordings, with its calibration (stored, or fitted now for an older
    checkpoint) and the baselines beside it; InputError when a part cannot be had."""
    calibration = checkpoint_calibration(ready.checkpoint, ready.cfg, ready.model, ready.device,
                                         f"--checkpoint {ready.path}")
    baselines = run_baselines(ready.recordings, ready.train, ready.evaluated)
    about = {"checkpoint": str(ready.path), "epoch": ready.checkpoint.get("epoch"), "split": split}
    return evaluate_model(ready.model, Recordings.of(ready.recordings, ready.evaluated), ready.device, calibration,
                          f"{ready.path.parent.name} ({split})", baselines, about)
