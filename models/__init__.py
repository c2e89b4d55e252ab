"""Ranking models, selected by name."""

import sys
from pathlib import Path

import torch
from torch import nn

from audio_data.tone_features import FEATURES
from config import subset_names
from models.baseline_residual import BaselineResidualRanker
from models.common import score_probe
from models.level_cnn import LevelCNNAudioRanker
from models.onset_residual import OnsetResidualRanker
from models.resnet_ranker import ResNetAudioRanker, SimpleCNNAudioRanker
from models.spectrum_cnn import SpectrumCNNAudioRanker
from utils.errors import InputError

MODELS = {"simple_cnn": SimpleCNNAudioRanker, "resnet18": ResNetAudioRanker, "simple_cnn_level": LevelCNNAudioRanker,
          "spectrum_cnn": SpectrumCNNAudioRanker, "baseline_residual": BaselineResidualRanker,
          "onset_residual": OnsetResidualRanker}


def build_model(name: str, subsets: int = 1) -> nn.Module:
    """Model `name`; one that reads the recordings' features is built for a run of `subsets` subsets (materials
    and frequencies pooled; config.DataConfig.subsets)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](subsets) if getattr(MODELS[name], "reads_features", False) else MODELS[name]()


def check_input_size(name: str, shape: tuple[int, ...]) -> None:
    """InputError unless model `name` can score spectrograms of `shape` [C, F, T].

    A forward pass on the meta device computes shapes only, but its shape functions import torch._dynamo and sympy
    on first use, a large share of a short command's start (docs/performance.md). Unless building the model
    imported them already (torchvision does, for the ResNet-18, whose real forward of one long recording is slow on
    a CPU), the check scores one zero spectrogram on the CPU instead, which is quick for the small CNNs.
    """
    with torch.random.fork_rng(devices=[]):  # building a model draws weights: the run's own draws stay as seeded
        with torch.device("meta"):
            model, device = build_model(name).eval(), "meta"
        if "torch._dynamo" not in sys.modules:
            model, device = build_model(name).eval(), "cpu"
    try:
        with torch.inference_mode():
            score_probe(model, torch.zeros(1, *shape, device=device))
    except RuntimeError as exc:
        raise InputError(f"spectrograms of {shape[-2]} × {shape[-1]} are too small for model {name} "
                         f"({str(exc).splitlines()[0]}): use a larger --n-fft, a smaller --hop-length or longer "
                         "recordings") from None


def checkpoint_model(checkpoint: dict, name: str, path: Path, device: torch.device) -> nn.Module:
    """Model `name` with a train.py checkpoint's weights, on `device`; InputError if they do not fit."""
    args = checkpoint.get("args", {})
    model = build_model(name, len(subset_names(args.get("material", ""), args.get("frequency") or "")))
    state = checkpoint["model_state_dict"]
    fitted = state.get("feature_mean") if isinstance(state, dict) else None
    if isinstance(fitted, torch.Tensor) and fitted.dim() and fitted.shape[-1] != len(FEATURES):  # an earlier set
        raise InputError(f"--checkpoint {path}: its model reads {fitted.shape[-1]} physical features, and this "
                         f"version measures {len(FEATURES)} ({', '.join(FEATURES)}): train it again")
    try:
        model.load_state_dict(state)
    except Exception:  # a foreign state dict fails in several ways
        raise InputError(f"--checkpoint {path}: its weights do not fit model {name!r} "
                         f"(trained as {checkpoint['args'].get('model')!r})") from None
    return model.to(device)
