"""The epoch loop's callbacks (training/fit.py): one small interface of named hooks, in the style of Lightning's.

Each callback keeps its own state. What a resumed run needs of that state is in the checkpointed history and run
state (the best epoch, the epochs since it, the step to resume TensorBoard from), so each callback rebuilds it in
`on_fit_start` from `fit.state` instead of storing a second copy that could disagree with the history.
"""

import time
from dataclasses import dataclass, field

import torch

from audio_data.loading import RunData
from config import RunConfig, to_yaml
from training.loop import Step, Training, epoch_line
from training.state import RunState, save_checkpoint
from utils.history import early_stop_reason, monitor_best, plot_history, write_metrics
from utils.io_utils import save_pickle
from utils.plotting import BackgroundFigures
from utils.run_paths import RunPaths
from utils.run_summary import HEARTBEAT_S, RunSummary
from utils.tensorboard_log import TensorBoardLog
from utils.tracking import plain_figures


@dataclass
class Fit:
    """What the loop and its callbacks share: the run's settings, what it trains with, its data, folder, state
    and summary; the epoch in progress, whether the last one improved --monitor, and why the run stops early."""
    cfg: RunConfig
    t: Training
    data: RunData
    device: torch.device
    run: RunPaths
    state: RunState
    summary: RunSummary
    callbacks: list["Callback"] = field(default_factory=list)
    figures: BackgroundFigures = field(default_factory=BackgroundFigures)  # drawn while training goes on
    epoch: int = 0
    improved: bool = False
    stop_reason: str | None = None

    def call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


def step_figures(fit: Fit, step: Step) -> dict[str, float]:
    """What the trackers log of a training step: its loss, its share of pairs ordered correctly, the learning
    rate."""
    return {"step/train_loss": step.loss, "step/train_accuracy": step.correct / len(step.target),
            "step/lr": fit.t.optimizer.param_groups[0]["lr"]}


def global_step(fit: Fit, batch: int, batches: int) -> int:
    """Step `batch` (1-based) of epoch `fit.epoch` counted from the run's first step."""
    return (fit.epoch - 1) * batches + batch


class Callback:
    """The hooks, called in the order the callbacks are listed; each does nothing unless overridden."""

    def on_fit_start(self, fit: Fit) -> None:
        """Before the first epoch this process trains (`fit.state.epoch` of them are done already)."""

    def on_step_end(self, fit: Fit, batch: int, batches: int, step: Step) -> None:
        """After training step `batch` of `batches` of epoch `fit.epoch`."""

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        """After an epoch is recorded in the history and its checkpoint built (`fit.state`)."""

    def on_interrupt(self, fit: Fit) -> None:
        """SIGINT or SIGTERM stopped the run between steps of epoch `fit.epoch`; the last complete epoch is
        `fit.state.epoch`."""

    def on_fit_end(self, fit: Fit) -> None:
        """After the last epoch, or when the loop is left by an exception."""

    def on_run_end(self, fit: Fit, status: str, evaluation: dict | None) -> None:
        """The run ends `status` (completed, interrupted or failed): after the final evaluation (`evaluation`,
        summary.json's figures) or where it stopped."""


class EarlyStopping(Callback):
    """--early-stop-patience: sets `fit.stop_reason` when --monitor has not improved for that many epochs. Runs
    on every process (their histories are equal), so all stop together."""

    def on_fit_start(self, fit: Fit) -> None:
        if fit.state.epoch:  # a resumed run that had stopped early trains no further
            fit.stop_reason = early_stop_reason(fit.state.history, fit.cfg.optim)

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        fit.stop_reason = early_stop_reason(fit.state.history, fit.cfg.optim)


class BestModel(Callback):
    """model_best.pt: the checkpoint of the first epoch with the best --monitor value so far (read from the
    history, which holds every epoch's figures)."""

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        fit.improved = monitor_best(fit.state.history, fit.cfg.optim.monitor)[1] == fit.state.epoch
        if fit.improved:
            save_checkpoint(fit.run.best_checkpoint, fit.state.checkpoint)


class Checkpointing(Callback):
    """model_epoch_<N>.pt every --checkpoint-interval epochs, after the last and when the run stops early; on
    SIGINT/SIGTERM the last complete epoch's checkpoint and history, so that --resume continues from there."""

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        epoch = fit.state.epoch
        if epoch and (epoch % fit.cfg.run.checkpoint_interval == 0 or epoch == fit.cfg.optim.epochs or fit.stop_reason):
            save_checkpoint(fit.run.checkpoint(epoch), fit.state.checkpoint)

    def on_interrupt(self, fit: Fit) -> None:
        save_checkpoint(fit.run.checkpoint(fit.state.epoch), fit.state.checkpoint)
        save_pickle(fit.state.history, fit.run.history)


class EpochFiles(Callback):
    """After each epoch: the history pickle and plot, summary.json, metrics.csv, and the epoch's line."""

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        history, epoch, run = fit.state.history, fit.state.epoch, fit.run
        save_pickle(history, run.history)
        fit.figures.submit(plot_history, {key: list(value) if isinstance(value, list) else value
                                          for key, value in history.items()}, run.history_plot, run.name)
        fit.summary.write(history, "running")
        lr = fit.t.optimizer.param_groups[0]["lr"]
        write_metrics(run.metrics, history, lr, seconds)
        print(epoch_line(epoch, fit.cfg.optim.epochs, train, val, lr, seconds) + ("  (best)" if fit.improved else "")
              + ("  (before training)" if epoch == 0 else ""), flush=True)
        if fit.stop_reason:
            print(fit.stop_reason, flush=True)


class TensorBoard(Callback):
    """--tensorboard: step and epoch figures as event files (the GHM histograms come from GHMStatsRecorder)."""

    def __init__(self):
        self.log: TensorBoardLog | None = None

    def on_fit_start(self, fit: Fit) -> None:
        self.log = TensorBoardLog(fit.run.tensorboard, len(fit.data.train_loader), fit.state.epoch)
        self.log.settings(to_yaml(fit.cfg))

    def on_step_end(self, fit: Fit, batch: int, batches: int, step: Step) -> None:
        self.log.step(step_figures(fit, step), global_step(fit, batch, batches))

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        self.log.epoch(fit.state.epoch, train, val, fit.t.optimizer.param_groups[0]["lr"])

    def ghm(self, stats: dict) -> None:
        """A recorded batch's GHM statistics as histograms (GHMStatsRecorder's `on_stats`)."""
        self.log.ghm(stats)

    def on_run_end(self, fit: Fit, status: str, evaluation: dict | None) -> None:
        if self.log is not None:
            self.log.final(plain_figures(evaluation or {}, "final"), fit.state.epoch)
            self.log.close()
            self.log = None


class Heartbeat(Callback):
    """Rewrites a running run's summary.json at most every `interval` seconds between steps, so that a long first
    epoch is not taken for a dead run (utils.summarize's stale check)."""

    def __init__(self, interval: float = HEARTBEAT_S):
        self.interval, self.last = interval, time.monotonic()

    def on_step_end(self, fit: Fit, batch: int, batches: int, step: Step) -> None:
        if time.monotonic() - self.last >= self.interval:
            fit.summary.write(fit.state.history, "running")
            self.last = time.monotonic()
