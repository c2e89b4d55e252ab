"""Run names and the layout of everything under `--save-dir`: every path of docs/outputs.md's table is
built here and nowhere else, and no output path leaves the run's folders."""

import re
import time
from dataclasses import dataclass
from pathlib import Path

from utils.errors import InputError
from utils.io_utils import make_folder

CHECKPOINTS, PLOTS, STATS = "model_checkpoints", "plots", "stats"
STATS_GLOB = "*_ghm_stats.pkl"
TIMESTAMP = re.compile(r"\d{8}_\d{6}(-\d+)?")
# One folder name: word characters, dots, plus and minus signs; never a separator, never "." or "..".
NAME_PART = re.compile(r"\w[\w.+-]*")
MAX_NAME = 100  # characters of a name given on the command line, so that a run folder's name stays below 255
CHECKPOINT_NAME = re.compile(r"model_epoch_(\d+)\.pt")


def checkpoint_epoch(path: Path) -> int | None:
    """N of a model_epoch_<N>.pt, None for any other file name."""
    match = CHECKPOINT_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def epoch_checkpoints(folder: Path) -> dict[int, Path]:
    """The model_epoch_<N>.pt files of a run folder by epoch, lowest first."""
    found = {checkpoint_epoch(p): p for p in Path(folder).glob("model_epoch_*.pt")}
    return {epoch: found[epoch] for epoch in sorted(e for e in found if e is not None)}


def run_problem(name: object, timestamp: object) -> str | None:
    """What is wrong with a run name and timestamp read from a file (None if they are ones we write): the name is
    one folder name (ours, `<material>_<frequency>_<loss>…_<timestamp>`, or one given by --run-name)."""
    if not isinstance(timestamp, str) or not TIMESTAMP.fullmatch(timestamp):
        return f"run timestamp {timestamp!r} is not of the form YYYYMMDD_HHMMSS[-N]"
    if not isinstance(name, str) or not NAME_PART.fullmatch(name):
        return f"run name {name!r} is not a folder name (letters, digits, '.', '_', '+', '-')"
    return None


@dataclass(frozen=True)
class RunPaths:
    """A run's folders under `save_dir` and every file name in them; name and timestamp are checked on creation."""
    save_dir: Path
    name: str
    timestamp: str

    def __post_init__(self):
        if problem := run_problem(self.name, self.timestamp):
            raise InputError(problem)

    @classmethod
    def named(cls, save_dir: str | Path, name: str) -> "RunPaths":
        """An existing run under `save_dir` by its name: the timestamp ends the name, or (a --run-name run) is the
        one in its training history's file name."""
        match = re.search(r"_(\d{8}_\d{6}(-\d+)?)$", name)
        if match or not NAME_PART.fullmatch(name):
            return cls(Path(save_dir), name, match.group(1) if match else "")
        stamps = [p.name[len("training_history_"):-len(".pkl")]
                  for p in (Path(save_dir) / CHECKPOINTS / name).glob("training_history_*.pkl")]
        return cls(Path(save_dir), name, stamps[0] if len(stamps) == 1 else "")

    @classmethod
    def of_checkpoint(cls, path: Path, run: dict) -> "RunPaths":
        """The run a checkpoint belongs to, from its `run` entry; the checkpoint must still sit in the run's folder."""
        name, timestamp = run.get("name"), run.get("timestamp")
        if problem := run_problem(name, timestamp):
            raise InputError(f"{path}: not a checkpoint this program wrote ({problem})")
        if path.parent.name != name or path.parent.parent.name != CHECKPOINTS:
            raise InputError(f"{path}: a run resumes in its own folder, {CHECKPOINTS}/{name}/; "
                             "this checkpoint is not there")
        return cls(path.parent.parent.parent, name, timestamp)

    @property
    def checkpoints(self) -> Path:
        return self.save_dir / CHECKPOINTS / self.name

    @property
    def plots(self) -> Path:
        return self.save_dir / PLOTS / self.name

    @property
    def stats(self) -> Path:
        return self.save_dir / STATS / self.name

    @property
    def history(self) -> Path:
        return self.checkpoints / f"training_history_{self.timestamp}.pkl"

    @property
    def history_plot(self) -> Path:
        return self.plots / f"training_history_{self.timestamp}.png"

    @property
    def summary(self) -> Path:
        return self.checkpoints / "summary.json"

    @property
    def log(self) -> Path:
        return self.checkpoints / "train.log"

    @property
    def metrics(self) -> Path:
        """One row per epoch, for spreadsheets and pandas."""
        return self.checkpoints / "metrics.csv"

    @property
    def config(self) -> Path:
        """The run's arguments as YAML."""
        return self.checkpoints / "config.yaml"

    @property
    def tensorboard(self) -> Path:
        """--logger tensorboard's event files."""
        return self.checkpoints / "tensorboard"

    @property
    def mlflow_store(self) -> Path:
        """--logger mlflow's SQLite store (unless MLFLOW_TRACKING_URI names another)."""
        return self.checkpoints / "mlflow.db"

    @property
    def wandb(self) -> Path:
        """--logger wandb's folder: W&B writes its `wandb/` (offline runs, logs) inside it."""
        return self.checkpoints

    @property
    def evaluation(self) -> Path:
        """The last model's evaluation on the evaluation split (test when held out, else validation)."""
        return self.checkpoints / "eval"

    @property
    def evaluation_best(self) -> Path:
        """The best model's (by --monitor) evaluation on the same split."""
        return self.checkpoints / "eval_best"

    @property
    def best_checkpoint(self) -> Path:
        """The checkpoint of the epoch with the best --monitor value so far."""
        return self.checkpoints / "model_best.pt"

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"model_epoch_{int(epoch)}.pt"

    def checkpoint_files(self) -> dict[int, Path]:
        return epoch_checkpoints(self.checkpoints)

    def ghm_stats(self, epoch: int, batch: int) -> Path:
        return self.stats / f"epoch{int(epoch)}_batch{int(batch)}_{self.timestamp}_ghm_stats.pkl"

    def grad_plot(self, epoch: int, batch: int) -> Path:
        return self.plots / f"grad_dist_epoch{int(epoch)}_batch{int(batch)}_{self.timestamp}.png"


def analysis_folder(save_dir: str | Path, name: str) -> Path:
    """`python -m analysis.ghm_runs analyze`'s default output: a run's name, or `<A>_vs_<B>` for --compare."""
    return Path(save_dir) / "analysis" / name


def evaluation_folder(checkpoint: Path, split: str) -> Path:
    """evaluate.py's default output: beside the checkpoint, one folder per checkpoint and split."""
    return checkpoint.parent / f"eval_{checkpoint.stem}_{split}"


def consistency_folder(save_dir: str | Path, material: str, frequency: str, loss_type: str) -> Path:
    """Where --verify-consistency keeps its batch records, shared by the runs of one data and loss setting."""
    return Path(save_dir) / "batch_consistency" / f"{pooled(material)}_{pooled(frequency)}_{loss_type}"


def consistency_record(folder: Path, timestamp: str, seed: int) -> Path:
    return folder / f"train_batches_{timestamp}_seed{seed}.pkl"


def consistency_records(folder: Path, seed: int) -> list[Path]:
    """The batch records of one seed in a consistency folder, oldest first."""
    return sorted(folder.glob(consistency_record(Path(), "*", seed).name), key=lambda p: p.stat().st_mtime)


def summaries(save_dir: str | Path) -> list[Path]:
    """Every run's summary.json under `save_dir`."""
    return sorted(Path(save_dir).glob(f"{CHECKPOINTS}/*/summary.json"))


def run_name_prefix(material: str, frequency: str, loss_type: str, alpha: float, seed: int,
                    fold: int | None = None) -> str:
    """`<material>_<frequency>_<loss>[_alpha<a>]_seed<seed>[_fold<k>]` (pooled materials or frequencies joined by
    +); the timestamp follows."""
    alpha_part = f"_alpha{alpha:g}" if loss_type == "ghm" else ""
    fold_part = f"_fold{fold}" if fold else ""
    return f"{pooled(material)}_{pooled(frequency)}_{loss_type}{alpha_part}_seed{seed}{fold_part}"


def pooled(names: str) -> str:
    """Comma-separated materials or frequencies as one part of a folder name: joined by +."""
    return names.replace(",", "+")


def folds_folder(save_dir: str | Path, name: str) -> Path:
    """Where --folds writes its folds summary: `<save-dir>/folds/<name>/`."""
    return Path(save_dir) / "folds" / name


def now() -> str:
    return time.strftime("%Y%m%d_%H%M%S")


def reserve_run(save_dir: str | Path, prefix: str) -> RunPaths:
    """A new run, unique across processes: creating its checkpoint folder is the reservation.

    Runs starting in the same second get the suffix -2, -3, ... on the timestamp.
    """
    save_dir = Path(save_dir)
    base = now()
    for k in range(1, 10_000):
        timestamp = base if k == 1 else f"{base}-{k}"
        run = RunPaths(save_dir, f"{prefix}_{timestamp}", timestamp)
        try:
            make_folder(run.checkpoints, exist_ok=False)
        except FileExistsError:
            continue
        return run
    raise InputError(f"{save_dir}: could not create a new run folder for {prefix}")
