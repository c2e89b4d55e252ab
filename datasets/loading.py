"""A run's recordings, its seeded 70/30 split and the pair loaders, from the run's arguments as a plain dict
(as checkpoints store them)."""

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, random_split

import config
from datasets.pairs import RankingPairDataset
from datasets.spectrogram_dataset import SpectrogramDatasetWithMaterial
from utils import distributed
from utils.common_utils import worker_init_fn
from utils.errors import InputError


def load_recordings(run_args: dict, frequency: str) -> SpectrogramDatasetWithMaterial:
    """The recordings that a run with these arguments (every flag of train.py, defaults included) uses."""
    seqs = run_args["seqs"]
    selected = None if seqs == "all" else [s.strip() for s in seqs.split(",") if s.strip()]
    return SpectrogramDatasetWithMaterial(
        run_args["data_root"], config.CLASSES, selected, frequency, run_args["material"], n_fft=run_args["n_fft"],
        hop_length=run_args["hop_length"], cache_dir=run_args["cache_dir"], duration=run_args["duration"],
        skip_bad_files=run_args["skip_bad_files"])


def split_recordings(recordings: Dataset, seed: int) -> tuple[Subset, Subset]:
    """The seeded 70/30 train/validation split of the recordings."""
    n_train = int(config.TRAIN_FRACTION * len(recordings))
    return random_split(recordings, [n_train, len(recordings) - n_train],
                        generator=torch.Generator().manual_seed(seed))


def make_loader(pairs: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int) -> DataLoader:
    """Under torchrun each process loads its own share of the pairs (a DistributedSampler)."""
    sampler = DistributedSampler(pairs, shuffle=shuffle, seed=seed, drop_last=True) if distributed.active() else None
    return DataLoader(pairs, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      drop_last=True, num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=worker_init_fn)


@dataclass
class RunData:
    """The recordings of a run, the indices of its validation recordings, and the two pair loaders."""
    recordings: SpectrogramDatasetWithMaterial
    val_indices: list[int]
    train_loader: DataLoader
    val_loader: DataLoader

    @property
    def loaders(self) -> tuple[DataLoader, DataLoader]:
        return self.train_loader, self.val_loader

    @property
    def val_paths(self) -> list[str]:
        return [self.recordings.paths[i] for i in self.val_indices]


def build_data(run_args: dict, frequency: str) -> RunData:
    """Recordings, a seeded 70/30 split into train/validation pairs, and their loaders."""
    recordings = load_recordings(run_args, frequency)
    train_set, val_set = split_recordings(recordings, run_args["seed"])
    train_pairs = RankingPairDataset(train_set, seed=run_args["seed"])
    val_pairs = RankingPairDataset(val_set, seed=run_args["seed"] + 1)
    share = distributed.world_size()
    batch_size = min(run_args["batch_size"], len(train_pairs) // share, len(val_pairs) // share)
    if batch_size < 1:
        raise InputError(f"{len(recordings)} recordings give {len(train_pairs)} training and {len(val_pairs)} "
                         "validation pairs of different classes; both splits need at least one")
    loaders = [make_loader(pairs, batch_size, shuffle, run_args["seed"], run_args["num_workers"])
               for pairs, shuffle in ((train_pairs, True), (val_pairs, False))]
    return RunData(recordings, list(val_set.indices), *loaders)
