"""Ranking losses, selected by `--loss-type`."""

from torch import nn

from losses.ghm_loss import GHMRankingLoss

LOSS_TYPES = ("standard", "ghm")


def build_loss(loss_type: str, margin: float, **ghm_options) -> nn.Module:
    """`standard`: nn.MarginRankingLoss(margin); `ghm`: GHMRankingLoss(margin, **ghm_options)."""
    if loss_type == "standard":
        return nn.MarginRankingLoss(margin=margin)
    if loss_type == "ghm":
        return GHMRankingLoss(margin=margin, **ghm_options)
    raise ValueError(f"unknown loss type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")
