"""A model's score-to-angle calibration (analysis/calibration.py), fitted on a run's training recordings: at
the end of training, or afterwards for a checkpoint written before calibrations existed."""

from collections.abc import Callable

import torch
from torch import nn

from analysis.calibration import calibration_problem, fit_calibration
from analysis.evaluation import score_recordings
from audio_data.classes import class_angle
from audio_data.loading import load_recordings, run_split
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from config import RunConfig
from models.common import reads_features
from utils.errors import InputError


def calibrate(model: nn.Module, recordings: SpectrogramDatasetWithMaterial, indices: list[int],
              device: torch.device, between: Callable[[], None] = lambda: None) -> dict:
    """Fit the calibration of `model` on the recordings at `indices` (the run's training split)."""
    features = recordings.load_features()[indices] if reads_features(model) else None
    scores = score_recordings(model, recordings.data[indices], device, between=between, features=features)
    classes = recordings.classes
    return fit_calibration(scores, recordings.labels[indices].numpy(), classes, [class_angle(c) for c in classes])


def checkpoint_calibration(checkpoint: dict, cfg: RunConfig, model: nn.Module, device: torch.device,
                           flag: str) -> dict:
    """The checkpoint's own calibration; for an older checkpoint without one, a calibration fitted now on the
    run's training recordings, if they are still where the run found them (else an InputError)."""
    stored = checkpoint.get("calibration")
    if stored is not None:
        if problem := calibration_problem(stored):
            raise InputError(f"{flag}: its calibration is unusable ({problem})")
        return stored
    try:
        recordings = load_recordings(cfg.data)
    except InputError as exc:
        raise InputError(f"{flag}: the checkpoint has no calibration, and the run's training recordings cannot "
                         f"be read to fit one ({exc})") from None
    split = run_split(recordings, cfg.data, cfg.run.seed)
    if [recordings.paths[i] for i in split.val] != list(checkpoint.get("val_recordings") or []):
        raise InputError(f"{flag}: the checkpoint has no calibration, and the run's recordings under "
                         f"{cfg.data.root} are not the ones it trained on, so none can be fitted")
    print(f"{flag}: no calibration stored (an older checkpoint); fitted one on the run's "
          f"{len(split.train)} training recordings", flush=True)
    return calibrate(model, recordings, split.train, device)
