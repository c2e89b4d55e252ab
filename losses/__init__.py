"""Ranking losses, selected by `--loss-type`, and a run's losses built from its loss settings."""

import math
from dataclasses import dataclass

from torch import nn

import config
from config import LOSS_TYPES, LossConfig
from losses.ghm_loss import GHMRankingLoss, option_problems


def build_loss(loss_type: str, margin: float, **ghm_options) -> nn.Module:
    """`standard`: nn.MarginRankingLoss(margin); `ghm`: GHMRankingLoss(margin, **ghm_options)."""
    if loss_type == "standard":
        return nn.MarginRankingLoss(margin=margin)
    if loss_type == "ghm":
        return GHMRankingLoss(margin=margin, **ghm_options)
    raise ValueError(f"unknown loss type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")


def ghm_options(loss: LossConfig) -> dict:
    """GHMRankingLoss's options from a run's loss settings: the default temperature is margin / 4, an infinite cap
    none."""
    temperature = config.GHM_TEMPERATURE_PER_MARGIN * loss.margin if loss.temperature is None else loss.temperature
    return {"bins": loss.bins, "alpha": loss.alpha, "momentum": loss.momentum, "temperature": temperature,
            "max_weight": None if math.isinf(loss.max_weight) else loss.max_weight}


def ghm_flag_problems(loss: LossConfig) -> dict[str, str]:
    """The --ghm-* flags whose values the GHM loss would refuse, each with what it must be."""
    return {f"--ghm-{name.replace('_', '-')}": problem
            for name, problem in option_problems(**ghm_options(loss)).items()}


@dataclass
class RunLosses:
    """A run's losses: the one it trains on, the margin loss logged beside a GHM loss (None when the criterion
    is that margin loss), and for a standard run with --ghm-stats a GHM monitor fed the detached scores (its
    weights are recorded, never applied)."""
    criterion: nn.Module
    margin_log: nn.Module | None
    monitor: GHMRankingLoss | None

    @property
    def ghm(self) -> GHMRankingLoss | None:
        """The GHM loss whose statistics the run records: the criterion of a GHM run, else the monitor."""
        return self.criterion if isinstance(self.criterion, GHMRankingLoss) else self.monitor

    def to(self, device) -> "RunLosses":
        return RunLosses(*(None if loss is None else loss.to(device)
                           for loss in (self.criterion, self.margin_log, self.monitor)))


def build_losses(loss: LossConfig) -> RunLosses:
    options = ghm_options(loss)
    if loss.type == "ghm":
        return RunLosses(GHMRankingLoss(loss.margin, **options), nn.MarginRankingLoss(margin=loss.margin), None)
    monitor = GHMRankingLoss(loss.margin, **options) if loss.stats else None
    return RunLosses(build_loss(loss.type, loss.margin), None, monitor)
