"""Recordings, spectrograms and ranking pairs.

The datasets are imported on first use, so that `datasets.naming` (which the torch-free analysis reads)
does not pull in torch.
"""

import importlib

_LAZY = {"RankingPairDataset": "datasets.pairs", "SpectrogramDatasetWithMaterial": "datasets.spectrogram_dataset"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'datasets' has no attribute {name!r}")
