"""GHM (Gradient Harmonizing Mechanism) for the pairwise margin ranking loss.

For a pair with scores s1, s2 and target t in {−1, +1}, with d = t·(s1 − s2):

    l_i = max(0, margin − d_i)                     the margin ranking loss
    g_i = sigmoid((margin − d_i) / T)  in (0, 1)   difficulty: near 0 easy, near 1 hard

g is the gradient norm of the smoothed hinge T·softplus((margin − d)/T); the temperature T = 1 is the
plain definition, a larger T keeps g informative when the margin is large next to the score differences.
The pairs are counted in `bins` equal-width bins of g over [0, 1] (g = 1 goes to the last bin). The
density of bin b is its count in the batch or, with momentum M > 0, the moving average

    S_b ← M·S_b + (1 − M)·count_b,   S started from the first batch's counts,

updated in training mode only. A non-empty bin b gets the weight

    w_b = c · S_b^(−alpha),   c chosen so that mean_i w_{b(i)} = 1,

so the loss stays on the scale of the standard loss: alpha = 0 gives exactly the standard loss and
alpha = 1 gives the GHM paper's β_b = N / (n_nonempty · count_b). With `max_weight` W (≥ 1) no weight
exceeds W: capped bins get W and the others are scaled up to keep the mean at 1. The weights carry no
gradient and

    loss = mean_i(w_{b(i)} · l_i).

Under torch.distributed the counts are summed over all processes first, so N processes with batch B weigh
pairs as one process with batch N·B.
"""

import torch
import torch.distributed as dist
from torch import nn


def global_counts(counts: torch.Tensor) -> torch.Tensor:
    """The bin counts summed over all processes of the default group (unchanged in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        counts = counts.clone()
        dist.all_reduce(counts)
    return counts


def cap_weights(weights: torch.Tensor, counts: torch.Tensor, max_weight: float) -> torch.Tensor:
    """Clip mean-1 bin weights at max_weight, rescaling the uncapped bins to keep the mean at 1.

    The capped set only grows, so `len(weights)` rounds suffice; a fixed loop avoids host synchronisation.
    Without a capped bin the weights are returned unchanged (bit for bit).
    """
    total = counts.sum()
    capped = torch.zeros_like(weights, dtype=torch.bool)
    for _ in range(len(weights)):
        capped = capped | (weights > max_weight)
        free_mass = total - max_weight * (counts * capped).sum()
        free_sum = (counts * weights).masked_fill(capped, 0).sum()
        scale = torch.where(capped.any(), free_mass / free_sum.clamp_min(torch.finfo(weights.dtype).tiny), 1.0)
        weights = torch.where(capped, torch.full_like(weights, max_weight), weights * scale)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


# What each GHM option must be; the loss's constructor and train.py's flag checks both use these rules.
RULES = {"bins": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "must be an integer >= 1"),
         "alpha": (lambda v: 0 <= v < float("inf"), "must be >= 0 and finite"),
         "momentum": (lambda v: 0 <= v < 1, "must be >= 0 and < 1"),
         "temperature": (lambda v: 0 < v < float("inf"), "must be > 0 and finite"),
         "max_weight": (lambda v: v is None or v >= 1, "must be >= 1 (weights average 1)")}


def option_problems(**options) -> dict[str, str]:
    """The given GHM options that break their rule, each with what it must be (NaN breaks every rule)."""
    return {name: RULES[name][1] for name, value in options.items() if not RULES[name][0](value)}


class GHMRankingLoss(nn.Module):
    """Margin ranking loss re-weighted by the density of pair difficulty (see module docstring).

    After each call, `last_stats` holds the batch's detached per-pair `g`, `bin` and `weight`, the
    per-bin `bin_counts` and `bin_weights`, and the `density` the weights came from. The momentum state
    is the buffer `density_state` (saved in `state_dict`).
    """

    def __init__(self, margin: float = 1.0, bins: int = 10, alpha: float = 0.75, momentum: float = 0.0,
                 temperature: float = 1.0, max_weight: float | None = None):
        super().__init__()
        problems = option_problems(bins=bins, alpha=alpha, momentum=momentum, temperature=temperature,
                                   max_weight=max_weight)
        if problems:
            name, problem = next(iter(problems.items()))
            raise ValueError(f"GHM {name.replace('_', ' ')} {problem}, got {locals()[name]!r}")
        self.margin = float(margin)
        self.bins = bins
        self.alpha = float(alpha)
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.max_weight = None if max_weight is None else float(max_weight)
        self.register_buffer("density_state", torch.zeros(bins))
        self.register_buffer("density_started", torch.zeros((), dtype=torch.bool))
        self.last_stats: dict[str, torch.Tensor] = {}

    def difficulty(self, s1: torch.Tensor, s2: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-pair g (float32) and bin index, and the global bin counts."""
        with torch.no_grad():
            g = torch.sigmoid((self.margin - target * (s1 - s2)).float() / self.temperature)
            bin_index = (g * self.bins).long().clamp_(0, self.bins - 1)
            # scatter_add rather than bincount: bincount synchronises with the host on CUDA
            counts = torch.zeros(self.bins, device=g.device).scatter_add_(0, bin_index, torch.ones_like(g))
            counts = global_counts(counts)
        return g, bin_index, counts

    def density(self, counts: torch.Tensor) -> torch.Tensor:
        """Batch counts, or the momentum average (updated only in training mode)."""
        if self.momentum == 0:
            return counts
        moved = self.momentum * self.density_state + (1 - self.momentum) * counts
        density = torch.where(self.density_started, moved, counts)
        if self.training:
            self.density_state.copy_(density)
            self.density_started.fill_(True)
        return density

    def bin_weights(self, counts: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        raw = torch.where(counts > 0, density.clamp_min(torch.finfo(density.dtype).tiny).pow(-self.alpha),
                          torch.zeros_like(density))
        weights = raw * (counts.sum() / (counts * raw).sum())
        return weights if self.max_weight is None else cap_weights(weights, counts, self.max_weight)

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (s1.shape == s2.shape == target.shape) or s1.dim() != 1:
            raise ValueError(f"GHM loss needs 1-D scores and targets of one shape, got "
                             f"{tuple(s1.shape)}, {tuple(s2.shape)} and {tuple(target.shape)}")
        # checked on the CPU only: on an accelerator the check would synchronise with the host every step
        if target.device.type == "cpu" and not torch.all((target == 1) | (target == -1)):
            raise ValueError("GHM loss targets must be -1 or +1")
        pair_loss = (self.margin - target * (s1 - s2)).clamp_min(0)
        g, bin_index, counts = self.difficulty(s1, s2, target)
        with torch.no_grad():
            density = self.density(counts)
            bin_weights = self.bin_weights(counts, density)
            weight = bin_weights[bin_index].to(pair_loss.dtype)
        self.last_stats = {"g": g, "bin": bin_index, "weight": weight, "bin_counts": counts,
                           "bin_weights": bin_weights, "density": density}
        return (weight * pair_loss).mean()
