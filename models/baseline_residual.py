"""A ranker that starts from the best simple baseline and learns what it misses.

    score(x, f) = b(f) + r(x, f),    b(f) = w·z,    z = (f − μ) / σ

f are the recording's physical features (audio_data/tone_features.py: levels, noise floor, onset-to-steady ratio,
early decay). b is the pairwise logistic ranker on them (models/linear_ranker.py), fitted on the run's training
recordings before the first step and scaled to the loss's margin (`fit_baseline`), then fixed: μ, σ and w are
buffers, saved in checkpoints. r is the small CNN on the spectrogram, its head fed z beside the pooled
convolutions; the head's last layer starts at zero, so before the first step the model is the baseline, and
training (with either loss) changes only r.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from audio_data.tone_features import FEATURES
from models.linear_ranker import fit_logistic, margin_scale, standardised_pairs
from models.resnet_ranker import SimpleCNNAudioRanker


class BaselineResidualRanker(SimpleCNNAudioRanker):
    """The logistic baseline on the physical features plus the small CNN's residual (module docstring)."""

    reads_features = True

    def __init__(self):
        super().__init__()
        k = len(FEATURES)
        self.head[1] = nn.Linear(self.head[1].in_features + k, self.head[1].out_features)
        nn.init.zeros_(self.head[3].weight)
        nn.init.zeros_(self.head[3].bias)
        self.register_buffer("feature_mean", torch.zeros(k))
        self.register_buffer("feature_std", torch.ones(k))
        self.register_buffer("baseline_weights", torch.zeros(k))

    def fit_baseline(self, features: np.ndarray, labels: np.ndarray, margin: float) -> None:
        """μ, σ and w from the training recordings' features `[N, K]` and class indices `[N]`: w's direction is the
        logistic ranker's, its length the one that suits the loss's `margin` on the training pairs (`margin_scale`;
        the logistic fit's own scale is arbitrary, and a residual left to stretch the scores to the margin would
        have to learn that instead of what the baseline misses)."""
        mean, std, d, y = standardised_pairs(features, labels)
        w = fit_logistic(d, y)
        w = w * margin_scale(y * (d @ w), margin)
        for buffer, value in ((self.feature_mean, mean), (self.feature_std, std), (self.baseline_weights, w)):
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype))

    def standardized(self, features: torch.Tensor) -> torch.Tensor:
        return (features.to(self.feature_mean.dtype) - self.feature_mean) / self.feature_std

    def baseline_score(self, features: torch.Tensor) -> torch.Tensor:
        """b(f) `[B]`, the score's fixed part, in float32 also under autocast (a product and a sum, which autocast
        leaves in float32: a bfloat16 matrix product would round the scores of near neighbours together)."""
        return self._baseline(self.standardized(features))

    def _baseline(self, z: torch.Tensor) -> torch.Tensor:
        return (z * self.baseline_weights).sum(dim=1)

    def _head(self, pooled: torch.Tensor, x: torch.Tensor | Sequence[torch.Tensor], rows: torch.Tensor | None = None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        if features is None:
            raise ValueError("the baseline-residual model scores from the recordings' physical features too")
        z = self.standardized(features if rows is None else features[rows.to(features.device)])
        residual = self.head[1:](torch.cat([self.head[0](pooled), z.to(pooled.dtype)], dim=1)).squeeze(1)
        return self._baseline(z) + residual
