"""GHM (Gradient Harmonizing Mechanism) for the pairwise margin ranking loss.

For a pair with scores s1, s2 and target t in {−1, +1}, with d = t·(s1 − s2):

    l_i = max(0, margin − d_i)                 the margin ranking loss
    g_i = sigmoid(margin − d_i)  in (0, 1)     difficulty: near 0 easy, near 1 hard

The pairs are counted in `bins` equal-width bins of g over [0, 1] (g = 1 goes to the last bin).
A non-empty bin b holding count_b pairs gets the weight

    w_b = c · count_b^(−alpha),   c chosen so that mean_i w_{b(i)} = 1,

so the loss stays on the scale of the standard loss: alpha = 0 gives exactly the standard loss and
alpha = 1 gives the GHM paper's β_b = N / (n_nonempty · count_b). The weights carry no gradient and

    loss = mean_i(w_{b(i)} · l_i).
"""

import torch
from torch import nn


class GHMRankingLoss(nn.Module):
    """Margin ranking loss re-weighted by the density of pair difficulty (see module docstring).

    After each call, `last_stats` holds the batch's detached per-pair `g`, `bin` and `weight` and the
    per-bin `bin_counts` and `bin_weights`.
    """

    def __init__(self, margin: float = 1.0, bins: int = 10, alpha: float = 0.75):
        super().__init__()
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f"GHM bins must be an integer >= 1, got {bins!r}")
        if not alpha >= 0:
            raise ValueError(f"GHM alpha must be >= 0, got {alpha!r}")
        self.margin = float(margin)
        self.bins = bins
        self.alpha = float(alpha)
        self.last_stats: dict[str, torch.Tensor] = {}

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (s1.shape == s2.shape == target.shape) or s1.dim() != 1:
            raise ValueError(f"GHM loss needs 1-D scores and targets of one shape, got "
                             f"{tuple(s1.shape)}, {tuple(s2.shape)} and {tuple(target.shape)}")
        if not torch.all((target == 1) | (target == -1)):
            raise ValueError("GHM loss targets must be -1 or +1")
        slack = self.margin - target * (s1 - s2)
        pair_loss = slack.clamp_min(0)
        with torch.no_grad():
            g = torch.sigmoid(slack.float())
            bin_index = (g * self.bins).long().clamp_(0, self.bins - 1)
            counts = torch.bincount(bin_index, minlength=self.bins).float()
            raw = torch.where(counts > 0, counts.clamp_min(1).pow(-self.alpha), torch.zeros_like(counts))
            bin_weights = raw * (len(g) / (counts * raw).sum())
            weight = bin_weights[bin_index].to(pair_loss.dtype)
        self.last_stats = {"g": g, "bin": bin_index, "weight": weight,
                           "bin_counts": counts, "bin_weights": bin_weights}
        return (weight * pair_loss).mean()
