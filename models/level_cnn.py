"""The small CNN with the recording's level beside the spectrogram's shape."""

from collections.abc import Sequence

import torch
from torch import nn

from models.resnet_ranker import SimpleCNNAudioRanker

LEVELS = 2  # the dB spectrogram's peak and mean


class LevelCNNAudioRanker(SimpleCNNAudioRanker):
    """The small CNN, its head also fed the dB spectrogram's peak and mean (in units of 20 dB), which the
    per-spectrogram standardisation removes. With --db-reference full-scale they are the recording's levels:
    the tone's peak and the average over all bins, mostly the noise floor. The convolutions are the original's."""

    def __init__(self):
        super().__init__()
        self.head[1] = nn.Linear(self.head[1].in_features + LEVELS, self.head[1].out_features)

    def _head(self, pooled: torch.Tensor, x: torch.Tensor | Sequence[torch.Tensor], rows: torch.Tensor | None = None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        levels = torch.stack([torch.stack([row.amax(), row.mean()]) for row in x]).to(pooled.dtype) / 20
        levels = levels if rows is None else levels[rows]
        return self.head[1:](torch.cat([self.head[0](pooled), levels], dim=1)).squeeze(1)
