"""A small ranker of the time-averaged spectrum: a tone is stationary, so time may carry little."""

import torch
from torch import nn

from models.common import GlobalPool

DB_SCALE = 20.0  # input dB divided by this: a factor of ten in amplitude is one unit


class SpectrumCNNAudioRanker(nn.Module):
    """The dB spectrogram averaged over time (not standardised, so with --db-reference full-scale the level
    stays), two 1-D conv-BN-ReLU blocks over frequency, a max over frequency, one linear output: about 700
    weights, for data sets of a few dozen recordings."""

    def __init__(self, channels: int = 8, kernel: int = 9):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, kernel, padding=kernel // 2), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
            nn.MaxPool1d(4),
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2), nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True), GlobalPool((2,), "max"), nn.Flatten())
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = x.mean(dim=3) / DB_SCALE  # [B, 1, F]
        return self.head(self.features(spectrum)).squeeze(1)
