"""Recordings, spectrograms and ranking pairs."""

from datasets.pairs import RankingPairDataset
from datasets.spectrogram_dataset import SpectrogramDatasetWithMaterial

__all__ = ["RankingPairDataset", "SpectrogramDatasetWithMaterial"]
