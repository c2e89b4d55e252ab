"""A ranker that starts from the best simple baseline and learns what it misses.

    score(x, f) = b(f) + r(x, f),    b(f) = w_s·z,    z = (f − μ_s) / σ_s

f are the recording's physical features (audio_data/tone_features.py: levels, noise floor, onset-to-steady ratio,
early decay, onset rise), s its subset (material and frequency) in a run that pools several. b is the pairwise
logistic ranker on them (models/linear_ranker.py), fitted on the run's training recordings of each subset on its own
before the first step and scaled to the loss's margin (`fit_baseline`), then fixed: μ, σ and w (one row per subset)
are buffers, saved in checkpoints. r is the small CNN on the spectrogram, its head fed z (and the subset, one-hot)
beside the pooled convolutions, one residual for every subset; the head's last layer starts at zero, so before the
first step the model is the baseline, and training (with either loss) changes only r.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from audio_data.tone_features import FEATURES, MEASURED
from models.linear_ranker import fit_logistic, margin_scale, standardised_pairs
from models.resnet_ranker import SimpleCNNAudioRanker


class BaselineResidualRanker(SimpleCNNAudioRanker):
    """The logistic baseline on the physical features plus the small CNN's residual (module docstring), for a run
    of `subsets` subsets. Its features `[B, MEASURED (+ subsets)]` are the recording's measured columns
    (audio_data/tone_features.py: FEATURES, then the onset view, which this model leaves to `learned`) and, where
    the run has several subsets, a one-hot column per subset."""

    reads_features = True
    starts_as_baseline = True  # the head's last layer starts at zero
    learned_width = 0  # the width of what `learned` adds to the head's inputs

    def __init__(self, subsets: int = 1):
        super().__init__()
        k = len(FEATURES)
        self.subsets = subsets
        self.subset_columns = subsets if subsets > 1 else 0
        self.inputs_beside = MEASURED + self.subset_columns
        self.head[1] = nn.Linear(self.head[1].in_features + k + self.subset_columns + self.learned_width,
                                 self.head[1].out_features)
        nn.init.zeros_(self.head[3].weight)
        nn.init.zeros_(self.head[3].bias)
        self.register_buffer("feature_mean", torch.zeros(subsets, k))
        self.register_buffer("feature_std", torch.ones(subsets, k))
        self.register_buffer("baseline_weights", torch.zeros(subsets, k))

    def subset_of(self, features: torch.Tensor) -> torch.Tensor:
        """Each row's subset index `[B]`, from its one-hot columns (0 in a one-subset model)."""
        if self.subsets == 1:
            return torch.zeros(len(features), dtype=torch.int64, device=features.device)
        return features[:, MEASURED:].argmax(dim=1)

    def fit_baseline(self, features: np.ndarray, labels: np.ndarray, margin: float) -> None:
        """μ, σ and w of each subset from its training recordings' features (as the model reads them) and class
        indices `[N]`: w's direction is the logistic ranker's, its length the one that suits the loss's `margin` on
        the training pairs (`margin_scale`; the logistic fit's own scale is arbitrary, and a residual left to stretch
        the scores to the margin would have to learn that instead of what the baseline misses). A subset with
        training recordings of one class only keeps w = 0."""
        subset = self.subset_of(torch.from_numpy(features)).numpy()
        for s in np.unique(subset):
            mean, std, d, y = standardised_pairs(features[subset == s, :len(FEATURES)], labels[subset == s])
            w = fit_logistic(d, y) if len(y) else np.zeros(len(FEATURES))
            w = w * margin_scale(y * (d @ w), margin)
            for buffer, value in ((self.feature_mean, mean), (self.feature_std, std), (self.baseline_weights, w)):
                buffer[s] = torch.as_tensor(value, dtype=buffer.dtype)

    def baseline_score(self, features: torch.Tensor) -> torch.Tensor:
        """b(f) `[B]`, the score's fixed part, in float32 also under autocast (a product and a sum, which autocast
        leaves in float32: a bfloat16 matrix product would round the scores of near neighbours together)."""
        return self._baseline(features)[0]

    def _baseline(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b(f), z): the baseline score and the standardised features, with each row's subset's μ, σ and w."""
        subset = self.subset_of(features)
        physical = features[:, :len(FEATURES)].to(self.feature_mean.dtype)
        z = (physical - self.feature_mean[subset]) / self.feature_std[subset]
        return (z * self.baseline_weights[subset]).sum(dim=1), z

    def learned(self, features: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        """More inputs of the residual's head, learned from the features (a subclass's: models/onset_residual.py)."""
        return []

    def _head(self, pooled: torch.Tensor, x: torch.Tensor | Sequence[torch.Tensor], rows: torch.Tensor | None = None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        if features is None:
            raise ValueError("the baseline-residual model scores from the recordings' physical features too")
        features = features if rows is None else features[rows.to(features.device)]
        baseline, z = self._baseline(features)
        inputs = [self.head[0](pooled), z.to(pooled.dtype), features[:, MEASURED:].to(pooled.dtype),
                  *self.learned(features, pooled.dtype)]
        return baseline + self.head[1:](torch.cat(inputs, dim=1)).squeeze(1)
