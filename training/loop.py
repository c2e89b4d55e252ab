"""What a run trains with, one training step, and one pass over a loader."""

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from analysis.ranking_metrics import ordered_correctly
from audio_data.loading import RunData, build_data
from audio_data.pairs import PairBatch, RankingPairDataset, batch_to
from audio_data.time_crop import TimeCrop
from config import RunConfig
from losses import RunLosses, build_losses
from models import build_model
from models.common import score
from models.pair_forward import PairScorer
from training.optim import Schedule, build_optimizer, build_schedule
from utils import distributed, interrupt
from utils.errors import TrainingStopped
from utils.history import EPOCH_METRICS
from utils.phase_clock import CLOCK

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Training:
    """What one run trains with. `scorer` gives the pair scores (the model, wrapped for DistributedDataParallel
    under torchrun); `crop` cuts the training batches in time (--time-crop)."""
    model: nn.Module
    scorer: nn.Module
    losses: RunLosses
    optimizer: torch.optim.Optimizer
    scheduler: Schedule | None
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    crop: TimeCrop | None = None
    clip_norm: float | None = None


def run_data(cfg: RunConfig, device: torch.device | None = None) -> RunData:
    """The run's recordings, split and loaders (on `device` with --data-on-device; None: the CPU's loaders)."""
    return build_data(cfg.data, cfg.run.seed, cfg.optim.batch_size, cfg.devices.num_workers, device,
                      cfg.devices.data_on_device)


def build_training(cfg: RunConfig, device: torch.device) -> Training:
    model = build_model(cfg.model.name, len(cfg.data.subsets))
    if cfg.devices.sync_bn and distributed.active():
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    scorer = PairScorer(model, cfg.model.pair_forward)
    if distributed.active():
        scorer = DistributedDataParallel(scorer, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_schedule(optimizer, cfg.optim)
    # fp16 needs its gradients scaled against underflow; a disabled scaler is a plain backward and step
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.devices.amp == "fp16")
    crop = TimeCrop(cfg.data.time_crop, cfg.run.seed) if cfg.data.time_crop else None
    return Training(model, scorer, build_losses(cfg.loss).to(device), optimizer, scheduler,
                    AMP_DTYPES[cfg.devices.amp], scaler, crop, cfg.optim.grad_clip_norm)


@dataclass
class Step:
    """What a step leaves: the loss's value, the margin loss logged beside it (the loss itself when it is the
    margin loss), the number of pairs ordered correctly, the detached pair scores and targets, and the pairs'
    recording numbers."""
    loss: float
    margin: float
    correct: int
    s1: torch.Tensor
    s2: torch.Tensor
    target: torch.Tensor
    index1: torch.Tensor
    index2: torch.Tensor


def train_step(t: Training, batch: PairBatch, device: torch.device, update: bool = True,
               scores: torch.Tensor | None = None) -> Step:
    """One batch of pairs: forward (under autocast with --amp), the loss in float32 and, with `update`, the scaled
    backward and the optimizer step. A non-finite loss (on any process) raises TrainingStopped before the update.
    `scores` (eval mode): every recording's score already computed (`recording_scores`), looked up instead."""
    x, index1, index2 = batch.x, batch.index1, batch.index2
    target = batch.target.to(device, non_blocking=True)
    if scores is None:
        x = batch_to(x, device)
        features = None if batch.features is None else batch.features.to(device)
        with torch.autocast(device.type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
            s1, s2 = t.scorer(x, index1, index2, features)
    else:
        s1, s2 = scores[index1.to(device)], scores[index2.to(device)]
    s1, s2 = s1.float(), s2.float()  # the losses and GHM's difficulty, bins and weights in float32
    loss = t.losses.criterion(s1, s2, target)
    value, margin, correct = step_figures(t.losses, loss, s1, s2, target)
    if distributed.any_rank([not math.isfinite(value)], device)[0]:
        raise TrainingStopped(f"the loss is {value}; training stopped before this step, earlier checkpoints are kept")
    if update:
        t.optimizer.zero_grad(set_to_none=True)
        t.scaler.scale(loss).backward()
        if t.clip_norm is not None:  # on the true gradients: unscaled first (a no-op without fp16)
            t.scaler.unscale_(t.optimizer)
            nn.utils.clip_grad_norm_(t.model.parameters(), t.clip_norm)
        t.scaler.step(t.optimizer)
        t.scaler.update()
    return Step(value, margin, correct, s1.detach(), s2.detach(), target, index1, index2)


@torch.no_grad()
def step_figures(losses: RunLosses, loss: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, target: torch.Tensor
                 ) -> tuple[float, float, int]:
    """The loss, the logged margin loss and the correct pairs, read from the device in one wait, before the
    backward is queued: on a GPU the loop then prepares the next batch while the backward runs."""
    margin = loss if losses.margin_log is None else losses.margin_log(s1, s2, target)
    correct = ordered_correctly(s1 - s2, target).sum()
    value, margin, correct = torch.stack([loss.detach(), margin, correct.to(loss.dtype)]).tolist()
    return value, margin, int(correct)


def stop_check(device: torch.device) -> None:
    """interrupt.check, agreed by all processes under torchrun so that all stop after the same step."""
    interrupt.check(lambda flag: distributed.any_rank([flag], device)[0])


def run_epoch(t: Training, loader: DataLoader, device: torch.device, train: bool, epoch: int, progress: bool,
              on_batch: Callable | None = None, scores: torch.Tensor | None = None) -> dict:
    """One pass over `loader`, with optimizer steps (on --time-crop windows) when `train`. Returns mean losses and
    accuracy.

    `on_batch(batch, batches, step)` follows every step. Stops between steps
    (TrainingInterrupted) once SIGINT or SIGTERM has arrived. Under torchrun the figures are over all
    processes' pairs, and every stop is decided by all processes together.
    """
    sums = {"loss_main": 0.0, "loss_standard_log": 0.0, "correct": 0, "pairs": 0}
    desc = f"epoch {epoch} {'train' if train else 'val'}"
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for batch_number, batch in enumerate(bar, start=1):
        if train and t.crop is not None:
            batch = t.crop(batch, epoch, batch_number)
        try:
            with CLOCK.phase("train step") if train else nullcontext():
                step = train_step(t, batch, device, update=train, scores=scores)
        except TrainingStopped as exc:
            raise TrainingStopped(f"{desc}, batch {batch_number}: {exc}") from None
        n = len(step.target)
        sums["loss_main"] += step.loss * n
        sums["loss_standard_log"] += step.margin * n
        sums["correct"] += step.correct
        sums["pairs"] += n
        if on_batch is not None:
            on_batch(batch_number, len(loader), step)
        del batch  # the loader builds the next batch before the loop rebinds the name: let this one go first
        bar.set_postfix(loss=f"{sums['loss_main'] / sums['pairs']:.4f}",
                        acc=f"{sums['correct'] / sums['pairs']:.3f}")
        stop_check(device)
    loss_main, loss_standard, correct, pairs = distributed.sum_over_ranks(list(sums.values()), device)
    return dict(zip(EPOCH_METRICS, (loss_main / pairs, loss_standard / pairs, correct / pairs)))


def train_one_epoch(t: Training, loader: DataLoader, device: torch.device, epoch: int, progress: bool,
                    on_batch: Callable | None = None) -> dict:
    t.model.train()
    t.losses.criterion.train()
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    return run_epoch(t, loader, device, True, epoch, progress, on_batch)


@torch.no_grad()
def recording_scores(t: Training, pairs: RankingPairDataset, device: torch.device, chunk: int) -> torch.Tensor:
    """The eval-mode score of every recording that `pairs` draws from, `chunk` recordings at a time, in a table
    indexed by recording number (NaN for the others). In eval mode a recording's score does not depend on the
    rest of its batch, so one table serves every batch of a validation pass."""
    rows = np.unique(pairs.recording_indices).tolist()
    table = torch.full((len(pairs.recordings),), float("nan"), device=device)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        x, features = pairs.spectrograms(part).to(device), pairs.features(part)
        features = None if features is None else features.to(device)
        with torch.autocast(device.type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
            table[torch.tensor(part, device=device)] = score(t.model, x, features).float()
    return table


@torch.no_grad()
def evaluate(t: Training, loader: DataLoader, pairs: RankingPairDataset, device: torch.device, epoch: int,
             progress: bool) -> dict:
    """A validation pass over `loader`, which draws from `pairs`: each recording scored once, the pairs' losses
    from the scores."""
    t.model.eval()
    t.losses.criterion.eval()  # GHM momentum reads its state but does not update it on validation batches
    scores = recording_scores(t, pairs, device, loader.batch_size)
    return run_epoch(t, loader, device, False, epoch, progress, scores=scores)


def epoch_line(epoch: int, epochs: int, train: dict, val: dict, lr: float, seconds: float) -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    for split, m in (("train", train), ("val", val)):
        parts.append(f"{split} loss {m['loss_main']:.4f} (margin {m['loss_standard_log']:.4f}) "
                     f"acc {m['accuracy']:.3f}")
    return "  ".join(parts + [f"lr {lr:.2e}", f"{seconds:.1f}s"])
