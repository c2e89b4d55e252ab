"""Pairs of recordings from different classes, with the ranking target."""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Subset


def labels_and_indices(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Labels of `dataset` and the indices of its items in the underlying recording dataset."""
    if isinstance(dataset, Subset):
        labels, indices = labels_and_indices(dataset.dataset)
        chosen = np.asarray(dataset.indices, dtype=np.int64)
        return labels[chosen], indices[chosen]
    labels = np.asarray(dataset.labels, dtype=np.int64)
    return labels, np.arange(len(labels))


def batch_rows(index1: torch.Tensor, index2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct recordings of a pair batch (by recording number, ascending) and, for each of its 2B slots
    (the first recordings', then the second's), the row of x in a distinct batch that holds it."""
    return torch.unique(torch.cat([torch.as_tensor(index1), torch.as_tensor(index2)]), return_inverse=True)


def stacked(x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """A batch's spectrograms as one tensor `[B, C, F, T]`, whether collated stacked or as views (`view_batch`)."""
    return x if isinstance(x, torch.Tensor) else torch.stack(list(x))


def batch_to(x: torch.Tensor | Sequence[torch.Tensor], device: torch.device) -> torch.Tensor | Sequence[torch.Tensor]:
    """A batch's spectrograms on `device`. A CPU batch's views (`view_batch`) stay views for the CPU; for a GPU
    they are stacked once, straight into page-locked memory, from which the copy does not hold this thread up."""
    if not isinstance(x, torch.Tensor) and x[0].device.type == "cpu":
        if device.type == "cpu":
            return x
        if device.type == "cuda":
            x = torch.stack(list(x), out=torch.empty((len(x), *x[0].shape), dtype=x[0].dtype, pin_memory=True))
    return stacked(x).to(device, non_blocking=True)  # non-blocking from page-locked batches


def pair_halves(x: torch.Tensor | Sequence[torch.Tensor] | None, index1: torch.Tensor, index2: torch.Tensor
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A distinct batch's x as the two half-batches x1, x2 that `__getitem__` and the default collate give (from
    views, gathered straight from the recordings: one copy, not two); (None, None) for x None."""
    if x is None:
        return None, None
    _, slots = batch_rows(index1, index2)
    if not isinstance(x, torch.Tensor):
        rows = [x[i] for i in slots.tolist()]
        return torch.stack(rows[:len(index1)]), torch.stack(rows[len(index1):])
    slots = slots.to(x.device)
    return x[slots[:len(index1)]], x[slots[len(index1):]]


class PairBatch(NamedTuple):
    """A batch of pairs as the trainer's loaders give it: `x` each of its recordings' spectrograms once, in order of
    recording number (`[R, C, F, T]` stacked, a tuple of views `[C, F, T]`, or None where a pass scores each
    recording once and looks the pairs up); pair i is recordings (index1[i], index2[i]) of classes (label1[i],
    label2[i]) with ranking target target[i] (+1: the first ranks higher). `features` are x's recordings' physical
    features `[R, K]` (then a one-hot column per subset in a run that pools several) where the recordings have them
    loaded (for a model that reads them), else None."""
    x: torch.Tensor | tuple[torch.Tensor, ...] | None
    target: torch.Tensor
    label1: torch.Tensor
    label2: torch.Tensor
    index1: torch.Tensor
    index2: torch.Tensor
    features: torch.Tensor | None = None

    def halves(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The half-batches x1, x2: one spectrogram per pair and side, as `__getitem__` and default_collate give."""
        return pair_halves(self.x, self.index1, self.index2)


class RankingPairDataset(Dataset):
    """n·(n−1) random draws of two distinct recordings; draws with equal labels are dropped, and with
    `within_subset` (--pair-scope subset) draws of two subsets (materials or frequencies) too.

    Target is +1 when the first recording has the higher label, −1 otherwise. Items are
    `(x1, x2, target, label1, label2, index1, index2)`, the indices pointing into the recording
    dataset underneath any `Subset`, so that `paths[index]` names the recording. The trainer's loaders collate
    PairBatch records with `distinct_batch` or `view_batch` (training) and `index_batch` (validation) instead.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, within_subset: bool = False):
        self.dataset = dataset
        labels, self.recording_indices = labels_and_indices(dataset)
        n = len(labels)
        draws = n * (n - 1)
        rng = np.random.default_rng(seed)
        first = rng.integers(0, n, size=draws) if n > 1 else np.zeros(0, dtype=np.int64)
        second = (first + rng.integers(1, n, size=draws)) % n if n > 1 else first
        keep = labels[first] != labels[second]
        if within_subset:
            subsets = self.recordings.subset_index.numpy()[self.recording_indices]
            keep &= subsets[first] == subsets[second]
        self.first, self.second = first[keep], second[keep]
        self.targets = np.where(labels[self.first] > labels[self.second], 1.0, -1.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def recordings(self) -> Dataset:
        """The recording dataset underneath any `Subset` (the one `recording_indices` point into)."""
        recordings = self.dataset
        while isinstance(recordings, Subset):
            recordings = recordings.dataset
        return recordings

    def index_batch(self, indices: list[int]) -> PairBatch:
        """A batch of pairs without its spectrograms (x None), for a pass that scores each recording once and looks
        the pairs up (validation)."""
        first, second = self.first[indices], self.second[indices]
        i1, i2 = (torch.from_numpy(self.recording_indices[chosen]) for chosen in (first, second))
        labels = self.recordings.labels
        return PairBatch(None, torch.from_numpy(self.targets[indices]), labels[i1], labels[i2], i1, i2)

    def spectrograms(self, rows: list[int]) -> torch.Tensor:
        """The recordings' spectrograms `[len(rows), C, F, T]` by recording number, stacked where `.data` lives
        (a GPU with --data-on-device)."""
        data = self.recordings.data
        return torch.stack([data[i] for i in rows])

    def distinct_batch(self, indices: list[int]) -> PairBatch:
        """A batch of pairs whose x holds each of its recordings once, stacked, in order of recording number
        (`batch_rows`). A batch of 32 pairs holds about 31 distinct recordings instead of 64; the scorers read the
        pairs from x."""
        batch = self.view_batch(indices)
        return batch._replace(x=stacked(batch.x))

    def view_batch(self, indices: list[int]) -> PairBatch:
        """`distinct_batch` with x a tuple of the recordings' own tensors `[C, F, T]` (views, not copies), for
        training in the process that holds the recordings: a 6 s batch of 31 recordings would copy 143 MB."""
        batch = self.index_batch(indices)
        rows, _ = batch_rows(batch.index1, batch.index2)
        data = self.recordings.data
        return batch._replace(x=tuple(data[i] for i in rows.tolist()), features=self.features(rows))

    def features(self, rows: torch.Tensor | list[int]) -> torch.Tensor | None:
        """The physical features of the recordings numbered `rows`, or None where they are not loaded."""
        features = getattr(self.recordings, "features", None)
        return None if features is None else features[torch.as_tensor(rows)]

    def __getitem__(self, index: int) -> tuple:
        x1, label1 = self.dataset[int(self.first[index])]
        x2, label2 = self.dataset[int(self.second[index])]
        return (x1, x2, torch.tensor(self.targets[index]), label1, label2,
                int(self.recording_indices[self.first[index]]),
                int(self.recording_indices[self.second[index]]))
