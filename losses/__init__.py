"""Ranking losses, selected by `--loss-type`, and the GHM settings of a run built from its arguments."""

import math
from dataclasses import dataclass

from torch import nn

import config
from losses.ghm_loss import GHMRankingLoss, option_problems

LOSS_TYPES = ("standard", "ghm")


def build_loss(loss_type: str, margin: float, **ghm_options) -> nn.Module:
    """`standard`: nn.MarginRankingLoss(margin); `ghm`: GHMRankingLoss(margin, **ghm_options)."""
    if loss_type == "standard":
        return nn.MarginRankingLoss(margin=margin)
    if loss_type == "ghm":
        return GHMRankingLoss(margin=margin, **ghm_options)
    raise ValueError(f"unknown loss type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")


def ghm_options(run_args: dict) -> dict:
    """The GHM loss's options from a run's flags: the default temperature is margin / 4, an infinite cap none."""
    return {"bins": run_args["ghm_bins"], "alpha": run_args["ghm_alpha"], "momentum": run_args["ghm_momentum"],
            "temperature": (config.GHM_TEMPERATURE_PER_MARGIN * run_args["margin"]
                            if run_args["ghm_temperature"] is None else run_args["ghm_temperature"]),
            "max_weight": None if math.isinf(run_args["ghm_max_weight"]) else run_args["ghm_max_weight"]}


def ghm_flag_problems(run_args: dict) -> dict[str, str]:
    """The --ghm-* flags whose values the GHM loss would refuse, each with what it must be."""
    return {f"--ghm-{name.replace('_', '-')}": problem
            for name, problem in option_problems(**ghm_options(run_args)).items()}


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


def build_losses(run_args: dict) -> RunLosses:
    margin, options = run_args["margin"], ghm_options(run_args)
    if run_args["loss_type"] == "ghm":
        return RunLosses(GHMRankingLoss(margin, **options), nn.MarginRankingLoss(margin=margin), None)
    monitor = GHMRankingLoss(margin, **options) if run_args.get("ghm_stats") else None
    return RunLosses(build_loss(run_args["loss_type"], margin), None, monitor)
