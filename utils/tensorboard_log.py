"""--logger tensorboard: a run's settings, its losses, accuracies and learning rate per step and per epoch, its final
evaluation, and the GHM bin counts and weights of the recorded batches as histograms, as TensorBoard event files
in `<run>/tensorboard/`."""

from pathlib import Path

import numpy as np

from utils.errors import InputError
from utils.io_utils import make_folder


class TensorBoardLog:
    """Scalars are logged against the global training step (an epoch's at the step that ends it), so that a
    resumed run's `purge_step` drops the events of the epochs it trains again."""

    def __init__(self, folder: Path, batches: int, resumed_epoch: int):
        from torch.utils.tensorboard import SummaryWriter

        self.batches, self.start_step = batches, resumed_epoch * batches
        make_folder(folder)
        try:
            self.writer = SummaryWriter(log_dir=str(folder),
                                        purge_step=resumed_epoch * batches + 1 if resumed_epoch else None)
        except OSError as exc:
            raise InputError(f"{folder}: cannot be written ({exc.strerror or exc})") from None

    def step(self, figures: dict[str, float], global_step: int) -> None:
        for tag, value in figures.items():
            self.writer.add_scalar(tag, value, global_step)

    def epoch(self, epoch: int, train: dict, val: dict, lr: float) -> None:
        global_step = epoch * self.batches
        self.writer.add_scalar("epoch/epoch", epoch, global_step)
        self.writer.add_scalar("epoch/lr", lr, global_step)
        for split, figures in (("train", train), ("val", val)):
            for metric, value in figures.items():
                self.writer.add_scalar(f"epoch/{split}_{metric}", value, global_step)
        self.writer.flush()

    def settings(self, text: str) -> None:
        """The run's settings (config.yaml's text) as the text `settings`, at the step the run starts from."""
        self.writer.add_text("settings", "```\n" + text + "```", self.start_step)

    def final(self, figures: dict[str, float], epoch: int) -> None:
        """The final evaluation's figures at the step that ends the last epoch."""
        for tag, value in figures.items():
            self.writer.add_scalar(tag, value, epoch * self.batches)
        self.writer.flush()

    def ghm(self, stats: dict) -> None:
        """A recorded batch's difficulty histogram (pairs per bin), its pairs per bin times the bin weights
        (what the loss sees), the weight of each bin as a histogram over difficulty, and the pair weights."""
        edges, g, step = stats["bin_edges"], stats["g"], stats["global_step"]
        for tag, counts in (("ghm/bin_counts", stats["bin_counts"]), ("ghm/effective_counts",
                            stats["effective_counts"]), ("ghm/bin_weights", stats["bin_weights"])):
            self.writer.add_histogram_raw(tag, min=float(g.min()), max=float(g.max()), num=len(g),
                                          sum=float(g.sum()), sum_squares=float(np.square(g).sum()),
                                          bucket_limits=edges[1:].tolist(), bucket_counts=np.asarray(
                                              counts, dtype=np.float64).tolist(), global_step=step)
        self.writer.add_histogram("ghm/pair_weights", stats["weight"], step)

    def close(self) -> None:
        self.writer.close()
