"""The training callback that records GHM statistics: a pickle for the batches `--ghm-stats-batches` selects,
and the gradient-distribution plot of each epoch's first and last batch."""

from collections.abc import Callable

import numpy as np

from audio_data.classes import class_angle
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from config import stats_batch_rule
from losses import RunLosses
from training.callbacks import Callback, Fit
from training.loop import Step
from utils import distributed
from utils.ghm_utils import ghm_batch_stats, plot_grad_distribution
from utils.io_utils import save_pickle
from utils.run_paths import RunPaths

PER_PAIR = ("g", "bin", "weight")


class GHMStatsRecorder(Callback):
    """After every training step; `on_stats` gets each recorded batch's statistics after they are written
    (--tensorboard's histograms).

    In a standard run it first feeds the step's scores to the GHM monitor, whose weights are recorded, not
    applied. Under torchrun the statistics cover the global batch, gathered rank by rank; rank 0 writes.
    """

    def __init__(self, losses: RunLosses, loss_type: str, batches_spec: str,
                 recordings: SpectrogramDatasetWithMaterial, run: RunPaths,
                 on_stats: Callable[[dict], None] | None = None):
        self.losses, self.loss_type, self.rule = losses, loss_type, stats_batch_rule(batches_spec)
        self.recordings, self.run, self.on_stats = recordings, run, on_stats

    def on_step_end(self, fit: Fit, batch: int, batches: int, step: Step) -> None:
        if self.losses.monitor is not None:
            self.losses.monitor(step.s1, step.s2, step.target)
        if not self.rule(batch, batches):
            return
        ghm = self.losses.ghm
        last = {key: value.detach().cpu().numpy() for key, value in ghm.last_stats.items()}
        shares = distributed.gather_to_main(([last[key] for key in PER_PAIR], step.index1.tolist(),
                                             step.index2.tolist()))
        if shares is None:
            return
        for i, key in enumerate(PER_PAIR):
            last[key] = np.concatenate([share[0][i] for share in shares])
        pairs = [pair for share in shares for pair in zip(share[1], share[2])]
        paths, labels, materials = self.recordings.paths, self.recordings.labels, self.recordings.materials
        epoch = fit.epoch
        stats = ghm_batch_stats(ghm, last, self.loss_type, self.run.name, epoch, batch, (epoch - 1) * batches + batch,
                                [(paths[a], paths[b]) for a, b in pairs],
                                [(int(labels[a]), int(labels[b])) for a, b in pairs], self.recordings.classes,
                                [class_angle(c) for c in self.recordings.classes],
                                [(materials[a], materials[b]) for a, b in pairs])
        save_pickle(stats, self.run.ghm_stats(epoch, batch))
        if self.on_stats is not None:
            self.on_stats(stats)
        if batch in (1, batches):
            fit.figures.submit(plot_grad_distribution, stats, self.run.grad_plot(epoch, batch))
