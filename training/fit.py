"""The epoch loop: train, validate, schedule, record, then the callbacks (training/callbacks.py) checkpoint, keep
the best model, stop early, write the epoch's files and record GHM statistics."""

import sys
import time

from audio_data.loading import RunData
from config import RunConfig
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


def fit(f: Fit) -> None:
    """The epochs after `f.state.epoch`: until --epochs, or until a callback sets `f.stop_reason`. SIGINT/SIGTERM
    between steps raises TrainingInterrupted after the callbacks' `on_interrupt`."""
    progress = f.cfg.run.progress and sys.stderr.isatty() and distributed.is_main()
    f.call("on_fit_start")
    try:
        for epoch in range(f.state.epoch + 1, f.cfg.optim.epochs + 1):
            if f.stop_reason:
                break
            f.epoch, started = epoch, time.perf_counter()
            start_epoch(f.t.optimizer, f.cfg.optim, epoch)
            try:
                stop_check(f.device)
                with CLOCK.phase("training epoch"):
                    train = train_one_epoch(f.t, f.data.train_loader, f.device, epoch, progress,
                                            lambda *step: f.call("on_step_end", *step))
                with CLOCK.phase("validation"):
                    val = evaluate(f.t, f.data.val_loader, f.data.val_pairs, f.device, epoch, progress)
            except interrupt.TrainingInterrupted as exc:
                if not exc.aborted:
                    f.call("on_interrupt")
                raise
            end_epoch(f.t.scheduler, f.cfg.optim, epoch, val["loss_main"])
            record_epoch(f.state.history, epoch, train, val)
            f.state.epoch, f.state.elapsed = epoch, time.time() - f.summary.started
            with CLOCK.phase("epoch outputs"):
                if distributed.is_main():
                    f.state.checkpoint = training_checkpoint(f.t, f.state, f.data, f.run, train, val)
                f.call("on_epoch_end", train, val, time.perf_counter() - started)
    finally:
        f.call("on_fit_end")
        f.figures.close()  # every figure written before the run goes on or stops
