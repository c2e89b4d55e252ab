"""Ranking models, selected by name."""

from torch import nn

from models.resnet_ranker import ResNetAudioRanker, SimpleCNNAudioRanker

MODELS = {"simple_cnn": SimpleCNNAudioRanker, "resnet18": ResNetAudioRanker}


def build_model(name: str) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]()
