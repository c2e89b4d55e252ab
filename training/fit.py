"""The epoch loop: train, validate, schedule, record, then the callbacks (training/callbacks.py) checkpoint, keep
the best model, stop early, write the epoch's files and record GHM statistics."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from audio_data.loading import RunData, make_loader
from config import RunConfig
from models.common import starts_as_baseline
from training.callbacks import (BestModel, Callback, Checkpointing, EarlyStopping, EpochFiles, Fit, Heartbeat,
                                TensorBoard)
from training.ghm_recorder import GHMStatsRecorder
from training.trackers import Tracking
from training.loop import Training, evaluate, stop_check, train_one_epoch
from training.optim import end_epoch, start_epoch
from training.state import training_checkpoint
from utils import distributed, interrupt
from utils.history import record_epoch
from utils.phase_clock import CLOCK
from utils.run_paths import RunPaths


def run_callbacks(cfg: RunConfig, t: Training, data: RunData, run: RunPaths) -> list[Callback]:
    """The run's callbacks, in the order they are called. Every process stops early together and gathers the GHM
    statistics (a collective under torchrun); the main process alone writes files."""
    main_process = distributed.is_main()
    board = TensorBoard() if "tensorboard" in cfg.run.trackers() and main_process else None
    others = tuple(name for name in cfg.run.trackers() if name != "tensorboard")
    callbacks: list[Callback] = [EarlyStopping()]
    if t.losses.ghm is not None:
        callbacks.append(GHMStatsRecorder(t.losses, cfg.loss.type, cfg.loss.stats_batches, data.recordings, run,
                                          board and board.ghm))
    if main_process:
        callbacks += [BestModel(), Checkpointing(), EpochFiles(), Heartbeat()]
    return callbacks + ([board] if board else []) + ([Tracking(others)] if others and main_process else [])


@contextmanager
def saved_on_interrupt(f: Fit) -> Iterator[None]:
    """SIGINT/SIGTERM inside: the callbacks' `on_interrupt` (the last complete epoch saved), then the interrupt
    goes on; an aborted run (a second signal) saves nothing."""
    try:
        yield
    except interrupt.TrainingInterrupted as exc:
        if not exc.aborted:
            f.call("on_interrupt")
        raise


def untrained_epoch(f: Fit) -> None:
    """Epoch 0 of a new run whose model starts as a fitted baseline (models/common.py, `starts_as_baseline`): the
    untrained model's figures on the training and validation pairs (eval mode, the training pairs in a fixed
    order), recorded and passed to the callbacks as an epoch. The baseline is thus a candidate for model_best.pt:
    a residual that never improves --monitor on the validation pairs leaves the baseline as the run's model."""
    f.epoch, started = 0, time.perf_counter()
    train_order = make_loader(f.data.train_pairs, f.data.val_loader.batch_size, shuffle=False, seed=0,
                              num_workers=0, form="index")
    with saved_on_interrupt(f), CLOCK.phase("validation"):
        train = evaluate(f.t, train_order, f.data.train_pairs, f.device, 0, False)
        val = evaluate(f.t, f.data.val_loader, f.data.val_pairs, f.device, 0, False)
    finish_epoch(f, 0, train, val, started)


def finish_epoch(f: Fit, epoch: int, train: dict, val: dict, started: float) -> None:
    """Epoch `epoch` (begun at perf_counter `started`) into the history and the run's state, its checkpoint built
    (main process), then the callbacks' `on_epoch_end`."""
    record_epoch(f.state.history, epoch, train, val)
    f.state.epoch, f.state.elapsed = epoch, time.time() - f.summary.started
    with CLOCK.phase("epoch outputs"):
        if distributed.is_main():
            f.state.checkpoint = training_checkpoint(f.t, f.state, f.data, f.run, train, val)
        f.call("on_epoch_end", train, val, time.perf_counter() - started)


def fit(f: Fit) -> None:
    """The epochs after `f.state.epoch`: until --epochs, or until a callback sets `f.stop_reason`. SIGINT/SIGTERM
    between steps raises TrainingInterrupted after the callbacks' `on_interrupt`."""
    progress = f.cfg.run.progress and sys.stderr.isatty() and distributed.is_main()
    f.call("on_fit_start")
    try:
        if not f.state.history["epoch"] and starts_as_baseline(f.t.model):
            untrained_epoch(f)
        for epoch in range(f.state.epoch + 1, f.cfg.optim.epochs + 1):
            if f.stop_reason:
                break
            f.epoch, started = epoch, time.perf_counter()
            start_epoch(f.t.optimizer, f.cfg.optim, epoch)
            with saved_on_interrupt(f):
                stop_check(f.device)
                with CLOCK.phase("training epoch"):
                    train = train_one_epoch(f.t, f.data.train_loader, f.device, epoch, progress,
                                            lambda *step: f.call("on_step_end", *step))
                with CLOCK.phase("validation"):
                    val = evaluate(f.t, f.data.val_loader, f.data.val_pairs, f.device, epoch, progress)
            end_epoch(f.t.scheduler, f.cfg.optim, epoch, val["loss_main"])
            finish_epoch(f, epoch, train, val, started)
    finally:
        f.call("on_fit_end")
        f.figures.close()  # every figure written before the run goes on or stops
