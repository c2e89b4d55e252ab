"""A run's recordings, its seeded splits (an optional test split, then 70/30 train/validation) and the pair
loaders, from the run's data settings (config.DataConfig)."""

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, random_split

import config
from audio_data.classes import find_frequencies
from audio_data.grouping import grouped_parts, recording_groups, split_groups
from audio_data.manifest import SPLITS, read_manifest
from audio_data.pairs import RankingPairDataset
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from config import DataConfig
from utils import distributed
from utils.common_utils import worker_init_fn
from utils.errors import InputError, first_few


def load_recordings(data: DataConfig) -> SpectrogramDatasetWithMaterial:
    """The recordings that a run with these data settings uses: the folder layout's, or --manifest's."""
    return SpectrogramDatasetWithMaterial(
        data.root, data.class_list, data.seq_list, data.frequency, data.material, n_fft=data.n_fft,
        hop_length=data.hop_length, cache_dir=data.cache_dir, duration=data.duration,
        skip_bad_files=data.skip_bad_files, db_reference=data.db_reference, sample_rate=data.sample_rate,
        manifest=read_manifest(data.manifest, data.classes) if data.manifest else None)


def data_frequencies(data: DataConfig) -> list[str]:
    """The frequencies that --frequency all trains in turn: the manifest's in its order, or the folder layout's
    `<N>hz`, lowest first."""
    if data.manifest:
        return read_manifest(data.manifest, data.classes).frequencies
    return find_frequencies(Path(data.root), data.class_list, data.material.split(","))


@dataclass
class Split:
    """Indices into the recordings of each split; `test` is empty unless --test-fraction holds one out;
    `excluded_by` the --exclude-recordings entries that named one of the recordings; `groups` the groups of each
    split (train, val, test) when the recordings have groups."""
    train: list[int]
    val: list[int]
    test: list[int]
    excluded_by: tuple[str, ...] = ()
    groups: tuple[list[str], list[str], list[str]] | None = None


def held_out(labels: torch.Tensor, seed: int, fraction: float) -> list[int]:
    """`fraction` of each class's recordings (at least one of each class), drawn with `seed`."""
    generator, chosen = torch.Generator().manual_seed(seed), []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        count = max(1, round(fraction * len(members)))
        chosen += members[torch.randperm(len(members), generator=generator)[:count]].tolist()
    return sorted(chosen)


def test_recordings(labels: torch.Tensor, groups: list[str] | None, seed: int, test_fraction: float,
                    fold: tuple[int, int] | None) -> list[int]:
    """The test split: fold k of K (`fold`; grouped and stratified), or `test_fraction` of each class (grouped with
    `groups`), or none."""
    if fold is not None:
        k, folds = fold
        return grouped_parts(labels.tolist(), groups, [1 / folds] * folds, seed)[k - 1]
    if not test_fraction:
        return []
    if groups is not None:
        return grouped_parts(labels.tolist(), groups, [1 - test_fraction, test_fraction], seed)[1]
    return held_out(labels, seed, test_fraction)


def train_and_validation(labels: torch.Tensor, rest: list[int], groups: list[str] | None,
                         seed: int) -> tuple[list[int], list[int]]:
    """The recordings `rest` split 70/30, seeded: one by one, or without dividing a group (audio_data/grouping.py)."""
    if groups is not None:
        train, val = grouped_parts([int(labels[i]) for i in rest], [groups[i] for i in rest],
                                   [config.TRAIN_FRACTION, 1 - config.TRAIN_FRACTION], seed)
        return [rest[i] for i in train], [rest[i] for i in val]
    n_train = int(config.TRAIN_FRACTION * len(rest))
    train, val = random_split(rest, [n_train, len(rest) - n_train], generator=torch.Generator().manual_seed(seed))
    return [rest[i] for i in train.indices], [rest[i] for i in val.indices]


def class_and_subset(recordings: Dataset) -> torch.Tensor:
    """What the splits stratify by: each recording's class, and in a run that pools subsets its class within its
    subset, so that each subset's classes are split alike (a run of one subset: its classes, as before)."""
    subsets = getattr(recordings, "subset_index", None)
    if subsets is None or not len(subsets) or int(subsets.max()) == 0:
        return recordings.labels
    return recordings.labels * (int(subsets.max()) + 1) + subsets


def split_recordings(recordings: Dataset, seed: int, test_fraction: float = 0.0, groups: list[str] | None = None,
                     fold: tuple[int, int] | None = None) -> Split:
    """The seeded test split (`test_recordings`), then the seeded 70/30 train/validation split of the rest: with no
    test split and no groups, the same split as before either existed. No group is ever in two splits."""
    # folds are new, so they and their validation splits are stratified without groups too: a group per recording
    strata = [str(i) for i in range(len(recordings))] if groups is None and fold is not None else groups
    classes = class_and_subset(recordings)
    test = test_recordings(classes, strata, seed, test_fraction, fold)
    rest = sorted(set(range(len(recordings))) - set(test))
    train, val = train_and_validation(classes, rest, strata, seed)
    if groups is not None and not (train and val):
        raise InputError(f"the recordings' {len(set(groups))} groups cannot be split into training and validation "
                         "recordings: give more groups, or fewer recordings per group")
    split = Split(train, val, test, groups=groups and tuple(split_groups(groups, [train, val, test])))
    if test or groups is not None:
        trained = set(recordings.labels[split.train].tolist())
        if left := [recordings.classes[k] for k in recordings.labels.unique().tolist() if k not in trained]:
            if groups is not None or fold is not None:
                raise InputError(f"the {'fold' if fold else 'grouped split'} leaves class {', '.join(left)} no "
                                 "training recording: give more recordings or groups (or fewer folds)")
            raise InputError(f"--test-fraction {test_fraction}: class {', '.join(left)} has no training recording "
                             "left; use a smaller --test-fraction or more recordings")
    return split


def entry_matches(paths: list[str], entries: list[str]) -> dict[str, list[int]]:
    """The recordings (indices into `paths`) each --exclude-recordings entry names: by file name, or (an entry
    with a /) by path, relative to the current folder or absolute. Looked up in tables of the recordings' names
    and resolved paths, so the time grows with the list and the recordings, not with their product."""
    by_name, by_path = {}, {}
    for i, path in enumerate(paths):
        by_name.setdefault(Path(path).name, []).append(i)
        by_path.setdefault(Path(path).resolve(), []).append(i)
    return {entry: by_path.get(Path(entry).resolve(), []) if "/" in entry else by_name.get(entry, [])
            for entry in dict.fromkeys(entries)}


def without_excluded(split: Split, paths: list[str], entries: list[str]) -> Split:
    """The split with the --exclude-recordings entries taken out of its training recordings. The split itself is
    drawn first, so that validation and test stay those of the same run without the flag (an excluded recording
    that falls there stays, with a warning); an entry that names no recording gets a warning too."""
    if not entries:
        return split
    hit = entry_matches(paths, entries)
    if unmatched := [entry for entry, found in hit.items() if not found]:
        warnings.warn(f"--exclude-recordings: {len(unmatched)} entries name no recording of this run: "
                      + first_few(unmatched))
    excluded = {i for found in hit.values() for i in found}
    if held := sorted(paths[i] for i in excluded - set(split.train)):
        warnings.warn(f"--exclude-recordings: {len(held)} are validation or test recordings and stay there: "
                      + first_few(held))
    return Split([i for i in split.train if i not in excluded], split.val, split.test,
                 tuple(entry for entry, found in hit.items() if found), split.groups)


def fixed_split(recordings: SpectrogramDatasetWithMaterial) -> Split | None:
    """The split a manifest's split column fixes (None without one)."""
    splits = recordings.selection.splits
    if all(split is None for split in splits):
        return None
    split = Split(*([i for i, s in enumerate(splits) if s == name] for name in SPLITS))
    if not split.train or not split.val:
        missing = "training" if not split.train else "validation"
        raise InputError(f"--manifest: its split column leaves the run no {missing} recordings")
    return split


def run_split(recordings: SpectrogramDatasetWithMaterial, data: DataConfig, seed: int) -> Split:
    """The run's split: a manifest's split column, or seeded by --seed with --test-fraction's test split; without
    --exclude-recordings."""
    groups = recording_groups(recordings.paths, recordings.selection.groups, data.group_pattern)
    fold = (data.fold, data.folds) if data.folds else None
    split = fixed_split(recordings) or split_recordings(recordings, seed, data.test_fraction, groups, fold)
    return without_excluded(split, recordings.paths, list(data.exclude_recordings.entries)
                            if data.exclude_recordings else [])


def make_loader(pairs: RankingPairDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int,
                form: str = "views") -> DataLoader:
    """Batches of pair indices, collated as `form`: "views" (`pairs.view_batch`: each recording's spectrogram once,
    as views into the recordings), "stacked" (`pairs.distinct_batch`: stacked where the recordings' `.data` lives,
    a GPU with --data-on-device, or in worker processes, which send copies anyway), "pinned" (stacked, then copied
    by the loader into page-locked memory, which a GPU copies several times faster than ordinary memory) or
    "index" (the pairs' targets, labels and recording numbers only: validation). Under torchrun each process
    loads its own share of the pairs (a DistributedSampler)."""
    sampler = DistributedSampler(pairs, shuffle=shuffle, seed=seed, drop_last=True) if distributed.active() else None
    collate = {"views": pairs.view_batch, "stacked": pairs.distinct_batch, "pinned": pairs.distinct_batch,
               "index": pairs.index_batch}[form]
    return DataLoader(range(len(pairs)), batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      drop_last=True, num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=worker_init_fn, collate_fn=collate, pin_memory=form == "pinned")


@dataclass
class RunData:
    """The recordings of a run, its split, and the two pair loaders."""
    recordings: SpectrogramDatasetWithMaterial
    split: Split
    train_loader: DataLoader
    val_loader: DataLoader
    train_pairs: RankingPairDataset  # what train_loader draws from
    val_pairs: RankingPairDataset  # what val_loader draws from: validation scores each of its recordings once

    @property
    def loaders(self) -> tuple[DataLoader, DataLoader]:
        return self.train_loader, self.val_loader

    @property
    def val_paths(self) -> list[str]:
        return [self.recordings.paths[i] for i in self.split.val]

    @property
    def evaluation_split(self) -> tuple[str, list[int]]:
        """Where the final evaluation reports: the test split when there is one, else the validation split."""
        return ("test", self.split.test) if self.split.test else ("val", self.split.val)


def build_data(data: DataConfig, seed: int, batch_size: int, num_workers: int = 0,
               device: torch.device | None = None, on_device: bool = False) -> RunData:
    """Recordings, their seeded splits, the train/validation pairs, and their loaders of `batch_size` pairs (fewer
    when the splits have fewer). With `on_device` (--data-on-device) and a `device`, the spectrograms are moved
    there and the loaders gather batches there; otherwise training batches come as views into the recordings
    (`batch_to` stacks them for a GPU), or from `num_workers` worker processes stacked (in page-locked memory for a
    GPU)."""
    recordings = load_recordings(data)
    on_device = on_device and device is not None
    if on_device:
        recordings.data = recordings.data.to(device)
    split = run_split(recordings, data, seed)
    within = data.pair_scope == "subset"
    train_pairs = RankingPairDataset(Subset(recordings, split.train), seed=seed, within_subset=within)
    val_pairs = RankingPairDataset(Subset(recordings, split.val), seed=seed + 1, within_subset=within)
    share = distributed.world_size()
    batch_size = min(batch_size, len(train_pairs) // share, len(val_pairs) // share)
    if batch_size < 1:
        raise InputError(f"{len(recordings)} recordings give {len(train_pairs)} training and {len(val_pairs)} "
                         "validation pairs of different classes; both splits need at least one")
    here = not num_workers and (not on_device or device.type == "cpu")  # the recordings in this process
    pin = device is not None and device.type == "cuda" and not on_device  # worker processes' batches for a GPU
    form = "views" if here else "pinned" if pin else "stacked"
    loaders = [make_loader(train_pairs, batch_size, True, seed, num_workers, form),
               # validation scores each recording once and looks the pairs up
               make_loader(val_pairs, batch_size, False, seed, num_workers, "index")]
    return RunData(recordings, split, *loaders, train_pairs, val_pairs)
