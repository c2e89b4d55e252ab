"""Recordings, spectrograms and ranking pairs.

The datasets are imported on first use, so that `audio_data.naming` (which the torch-free analysis reads)
does not pull in torch.
"""

import importlib

_LAZY = {"RankingPairDataset": "audio_data.pairs", "SpectrogramDatasetWithMaterial": "audio_data.spectrogram_dataset"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audio_data' has no attribute {name!r}")
