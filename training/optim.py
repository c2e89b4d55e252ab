"""A run's optimiser, its learning-rate schedule and the linear warm-up before it (config.OptimConfig).

The defaults (Adam, plateau with factor 0.5 and patience 3, no warm-up, no clipping) are the trainer's original
choices. The warm-up sets the rate of epoch e ≤ W to learning_rate · e / W at the epoch's start, and the rate back to
learning_rate at the start of epoch W + 1; the schedule steps after each later epoch only, so its epochs count from
the end of the warm-up. Everything follows from the epoch number and the optimiser's and schedule's own states,
which checkpoints keep: a resumed run continues bit for bit.
"""

import torch
from torch import nn

from config import OptimConfig

Schedule = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def build_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    params, lr, decay = model.parameters(), optim.learning_rate, optim.weight_decay
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=decay, momentum=optim.momentum, nesterov=optim.nesterov)
    return torch.optim.Adam(params, lr=lr, weight_decay=decay)


def build_schedule(optimizer: torch.optim.Optimizer, optim: OptimConfig) -> Schedule | None:
    """The schedule, or None for a constant rate (after the warm-up)."""
    if optim.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                          patience=optim.plateau_patience)
    if optim.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, optim.epochs - optim.warmup_epochs),
                                                          eta_min=optim.min_learning_rate)
    if optim.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim.step_size, gamma=optim.step_gamma)
    return None


def fit_schedule_to_epochs(schedule: Schedule | None, optim: OptimConfig) -> None:
    """A cosine schedule runs over the epochs after the warm-up of the run's --epochs, also when a resumed run
    extends them (its restored state holds the length it was started with)."""
    if isinstance(schedule, torch.optim.lr_scheduler.CosineAnnealingLR):
        schedule.T_max = max(1, optim.epochs - optim.warmup_epochs)


def start_epoch(optimizer: torch.optim.Optimizer, optim: OptimConfig, epoch: int) -> None:
    """The warm-up's rate for `epoch` (1-based), and the full rate once it is over."""
    warmup = optim.warmup_epochs
    if warmup and epoch <= warmup + 1:
        for group in optimizer.param_groups:
            group["lr"] = optim.learning_rate * min(epoch, warmup) / warmup


def end_epoch(schedule: Schedule | None, optim: OptimConfig, epoch: int, val_loss: float) -> None:
    """One step of the schedule after an epoch past the warm-up (the plateau schedule reads the validation loss)."""
    if schedule is None or epoch <= optim.warmup_epochs:
        return
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        schedule.step(val_loss)
    else:
        schedule.step()
