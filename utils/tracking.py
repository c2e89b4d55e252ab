"""--logger mlflow and wandb: a run's settings, its per-step and per-epoch figures and its final evaluation in an
experiment tracker. Both backends have the same methods; training/trackers.py calls them from the training loop.

Figures: per step `step/train_loss`, `step/train_accuracy`, `step/lr` at the global step ((epoch - 1) * batches +
batch); per epoch metrics.csv's columns as `epoch/<column>` at the epoch; at the end the final evaluation's
figures as `final/<key>`. A resumed run continues the same tracked run (its id is kept in the checkpoint) and
logs the epochs it trains again once more: the newest value at a step is the one that counts, as in metrics.csv.
"""

import logging
import os
import re
import secrets
import time
import warnings
from pathlib import Path

from utils.errors import InputError

EXPERIMENT = "audio-angle-ranker"  # MLflow experiment and W&B project unless MLFLOW_EXPERIMENT_NAME / WANDB_PROJECT
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}  # MLflow's words for a run's end
PARAM_CHARS = 6000  # MLflow's limit on a parameter's value
NAME_OUTSIDE = re.compile(r"[^\w\-. :/]")  # what MLflow refuses in a metric's name, e.g. "logistic (7 features)"


def plain_figures(values: dict, prefix: str) -> dict[str, float]:
    """The numbers among `values` (nested dicts flattened with '/'), named `<prefix>/<key>` with the characters
    MLflow refuses in a name replaced by '_'."""
    figures = {}
    for key, value in values.items():
        name = f"{prefix}/{NAME_OUTSIDE.sub('_', str(key))}"
        if isinstance(value, dict):
            figures.update(plain_figures(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[name] = float(value)
    return figures


class MLflowTracker:
    """An MLflow run in the SQLite store `store` (MLflow's local store; its file store is in maintenance mode),
    or on the server MLFLOW_TRACKING_URI names. Step figures are sent once per epoch, in batches."""

    def __init__(self, store: Path, name: str, run_id: str | None, settings: dict):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its INFO lines on creating the tables
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mlflow|sqlalchemy|alembic)\.")
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store.resolve()}"
        self.client, self.pending = MlflowClient(tracking_uri=uri), []
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
        else:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
            params = [Param(key, str(value)[:PARAM_CHARS]) for key, value in settings.items()]
            for start in range(0, len(params), 100):  # log_batch takes 100 parameters at a time
                self.client.log_batch(run_id, params=params[start:start + 100])
        self.run_id = run_id

    def step(self, figures: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(key, value, now, step) for key, value in figures.items()]

    def epoch(self, figures: dict[str, float], epoch: int) -> None:
        self.step(figures, epoch)
        self.flush()

    def flush(self) -> None:
        for start in range(0, len(self.pending), 1000):  # log_batch takes 1000 metrics at a time
            self.client.log_batch(self.run_id, metrics=self.pending[start:start + 1000])
        self.pending = []

    def finish(self, figures: dict[str, float], status: str) -> None:
        self.step(figures, 0)
        self.flush()
        self.client.set_terminated(self.run_id, STATUS[status])


class WandbTracker:
    """A Weights & Biases run (WANDB_MODE=offline writes it under `folder`/wandb/ for `wandb sync`). W&B's own
    step counts log calls; `global_step` and `epoch` are the axes the figures are drawn against."""

    def __init__(self, folder: Path, name: str, run_id: str | None, settings: dict):
        import wandb

        self.wandb = wandb
        project = os.environ.get("WANDB_PROJECT") or EXPERIMENT
        self.run = wandb.init(project=project, dir=str(folder), name=name, id=run_id or secrets.token_hex(8),
                              resume="allow", config=None if run_id else settings,
                              settings=wandb.Settings(console="off", silent=True))
        self.run.define_metric("global_step")
        self.run.define_metric("step/*", step_metric="global_step")
        self.run.define_metric("epoch")
        self.run.define_metric("epoch/*", step_metric="epoch")
        self.run_id = self.run.id

    def step(self, figures: dict[str, float], step: int) -> None:
        self.run.log({**figures, "global_step": step})

    def epoch(self, figures: dict[str, float], epoch: int) -> None:
        self.run.log({**figures, "epoch": epoch})

    def finish(self, figures: dict[str, float], status: str) -> None:
        self.run.summary.update(figures)
        self.run.finish(exit_code=0 if status == "completed" else 1)


BACKENDS = {"mlflow": MLflowTracker, "wandb": WandbTracker}


def open_tracker(name: str, location: Path, run_name: str, run_id: str | None,
                 settings: dict) -> MLflowTracker | WandbTracker:
    """Backend `name`'s tracked run at `location` (a store or a folder): a new one, or `run_id`'s continued.
    InputError when it cannot start."""
    try:
        return BACKENDS[name](location, run_name, run_id, settings)
    except Exception as exc:  # a server away, a store that cannot be written: each is this one error
        raise InputError(f"--logger {name}: cannot start its run ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else 'no message'})") from None
