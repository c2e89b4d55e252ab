"""--time-crop: training batches of random windows in time, an augmentation for small data sets.

Each recording of a training batch is cut to `fraction` of its frames at a random start, the same window wherever
the recording appears in the batch (a training batch holds each recording once). The windows come from a
generator seeded by (seed, epoch, batch number), so a resumed run crops exactly as the uninterrupted one would.
Validation, evaluation and prediction see whole recordings: the models pool over time, so any length scores.
"""

import numpy as np
import torch

from audio_data.pairs import PairBatch


class TimeCrop:
    """`crop(batch, epoch, batch_number)`: the batch with each recording cut to its window of the batch."""

    def __init__(self, fraction: float, seed: int):
        self.fraction, self.seed = fraction, seed

    def width(self, frames: int) -> int:
        return max(1, round(self.fraction * frames))

    def __call__(self, batch: PairBatch, epoch: int, batch_number: int) -> PairBatch:
        """`batch` holds each recording once, so one window per recording. A batch of views (`view_batch`) stays
        one: each window a view."""
        x = batch.x
        frames = x[0].shape[-1]
        width = self.width(frames)
        if width >= frames:
            return batch
        state = np.random.SeedSequence([self.seed, epoch, batch_number]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(state))
        starts = torch.randint(0, frames - width + 1, (len(x),), generator=generator).tolist()
        windows = [row[..., start:start + width] for row, start in zip(x, starts)]
        return batch._replace(x=torch.stack(windows) if isinstance(x, torch.Tensor) else tuple(windows))
