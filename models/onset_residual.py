"""The baseline-residual ranker whose residual also reads the onset view: the tone's envelope millisecond by
millisecond around its start and its stop (audio_data/tone_features.py, `onset_view`), where the direct sound
arrives before the room's reflections and stops before them; the baseline sees it only as three numbers (the
onset-to-steady ratio, the early decay and the onset rise).

    score(x, f) = b(f) + r(x, f, v)

b is models/baseline_residual.py's. v, the two views (start, stop) in dB relative to the steady level, divided by
20, pass two small 1-D convolutions (2→8→8 channels, kernels 7 and 5 ms); their mean and maximum over time join
the head's inputs (16 more). The head's last layer starts at zero, so before the first step the model is the
baseline, as baseline_residual is.
"""

import torch
from torch import nn

from audio_data.tone_features import VIEW, VIEW_POINTS
from models.baseline_residual import BaselineResidualRanker

CHANNELS = 8


class OnsetResidualRanker(BaselineResidualRanker):
    """baseline_residual with the onset view as a third input of its residual (module docstring)."""

    learned_width = 2 * CHANNELS

    def __init__(self, subsets: int = 1):
        super().__init__(subsets)
        self.onset = nn.Sequential(nn.Conv1d(2, CHANNELS, 7, padding=3), nn.ReLU(inplace=True),
                                   nn.Conv1d(CHANNELS, CHANNELS, 5, padding=2), nn.ReLU(inplace=True))

    def learned(self, features: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        view = features[:, VIEW].to(dtype).reshape(-1, 2, VIEW_POINTS // 2) / 20
        y = self.onset(view)
        return [y.mean(dim=2), y.amax(dim=2)]
