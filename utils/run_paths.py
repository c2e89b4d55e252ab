"""Run names and where a run's outputs go under `--save-dir`."""

import time
from dataclasses import dataclass
from pathlib import Path

from utils.errors import InputError


@dataclass(frozen=True)
class RunPaths:
    save_dir: Path
    name: str
    timestamp: str

    @property
    def checkpoints(self) -> Path:
        return self.save_dir / "model_checkpoints" / self.name

    @property
    def plots(self) -> Path:
        return self.save_dir / "plots" / self.name

    @property
    def stats(self) -> Path:
        return self.save_dir / "stats" / self.name

    @property
    def history(self) -> Path:
        return self.checkpoints / f"training_history_{self.timestamp}.pkl"

    @property
    def history_plot(self) -> Path:
        return self.plots / f"training_history_{self.timestamp}.png"

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"model_epoch_{epoch}.pt"


def run_name_prefix(material: str, frequency: str, loss_type: str, alpha: float, seed: int) -> str:
    """`<material>_<frequency>_<loss>[_alpha<a>]_seed<seed>`; the timestamp follows."""
    alpha_part = f"_alpha{alpha:g}" if loss_type == "ghm" else ""
    return f"{material}_{frequency}_{loss_type}{alpha_part}_seed{seed}"


def reserve_run(save_dir: str | Path, prefix: str) -> RunPaths:
    """A new run, unique across processes: creating its checkpoint folder is the reservation.

    Runs starting in the same second get the suffix -2, -3, ... on the timestamp.
    """
    save_dir = Path(save_dir)
    base = time.strftime("%Y%m%d_%H%M%S")
    for k in range(1, 10_000):
        timestamp = base if k == 1 else f"{base}-{k}"
        run = RunPaths(save_dir, f"{prefix}_{timestamp}", timestamp)
        try:
            run.checkpoints.mkdir(parents=True)
        except FileExistsError:
            continue
        return run
    raise InputError(f"{save_dir}: could not create a new run folder for {prefix}")
