"""--logger mlflow / wandb as a callback: the run's settings when its tracked run starts, each step's and each
epoch's figures, the final evaluation at the end (utils/tracking.py has the backends)."""

from config import stored
from training.callbacks import Callback, Fit, global_step, step_figures
from training.loop import Step
from utils.history import last_epoch_row
from utils.tracking import open_tracker, plain_figures


class Tracking(Callback):
    """The trackers --logger names besides csv and tensorboard. Their run ids go into `fit.state.trackers`, and
    with it into every checkpoint, so that a resumed run continues the same tracked runs."""

    def __init__(self, names: tuple[str, ...]):
        self.names, self.trackers = names, []

    def on_fit_start(self, fit: Fit) -> None:
        settings = {key: value for key, value in stored(fit.cfg).items() if key != "resume"}
        for name in self.names:
            location = fit.run.mlflow_store if name == "mlflow" else fit.run.wandb
            tracker = open_tracker(name, location, fit.run.name, fit.state.trackers.get(name), settings)
            fit.state.trackers[name] = tracker.run_id
            self.trackers.append(tracker)

    def on_step_end(self, fit: Fit, batch: int, batches: int, step: Step) -> None:
        figures, at = step_figures(fit, step), global_step(fit, batch, batches)
        for tracker in self.trackers:
            tracker.step(figures, at)

    def on_epoch_end(self, fit: Fit, train: dict, val: dict, seconds: float) -> None:
        row = last_epoch_row(fit.state.history, fit.t.optimizer.param_groups[0]["lr"], seconds)
        for tracker in self.trackers:
            tracker.epoch(plain_figures(row, "epoch"), fit.state.epoch)

    def on_run_end(self, fit: Fit, status: str, evaluation: dict | None) -> None:
        trackers, self.trackers = self.trackers, []  # each finishes once, even if one of them fails
        for tracker in trackers:
            tracker.finish(plain_figures(evaluation or {}, "final"), status)
