"""Spectrograms computed once and kept on disk, one `.npy` entry per recording, read memory-mapped.

An entry's name hashes the recording's absolute path, size and modification time and the STFT
parameters, so a changed or added file gets a new entry and the others stay valid; a `.json` beside
each entry records those (the cache's index). Entries are written to a temporary name and renamed, so
concurrent runs (and the processes of a torchrun job) never read a half-written one. A dataset on a cache
holds only the entries' names: each item maps its entry, copies it and unmaps it, so resident memory follows
what the batches touch, not the size of the dataset.
"""

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from datasets.audio import read_wav
from datasets.spectrogram import spectrogram_db
from utils.errors import InputError
from utils.io_utils import atomic_path

VERSION = 1  # bump when the spectrogram definition changes


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Crop to `length` samples, or zero-pad at the end."""
    return samples[:length] if len(samples) >= length else np.pad(samples, (0, length - len(samples)))


def compute_spectrogram(path: Path, n_fft: int, hop_length: int, length: int, fit: bool) -> torch.Tensor:
    """Decode, check and transform one recording; `fit` crops or pads it to `length`, else it must have that many."""
    samples, _ = read_wav(path)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{path}: contains NaN or infinite samples")
    if not np.any(samples):
        raise InputError(f"{path}: silent (all samples are zero), so its dB spectrogram is meaningless")
    if fit:
        samples = fit_length(samples, length)
    elif len(samples) != length:
        raise InputError(f"{path}: header says {length} samples, but {len(samples)} could be decoded")
    return spectrogram_db(samples, n_fft, hop_length)


def entry_name(path: Path, n_fft: int, hop_length: int, length: int, fit: bool) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{n_fft}|{hop_length}|{length}|{fit}|{VERSION}"
    return hashlib.sha1(key.encode()).hexdigest() + ".npy"


def cache_entry(path: Path, n_fft: int, hop_length: int, length: int, fit: bool, cache_dir: Path) -> Path:
    """The cache entry of this exact recording, computed and written first if missing or damaged."""
    entry = Path(cache_dir) / entry_name(path, n_fft, hop_length, length, fit)
    try:
        np.load(entry, mmap_mode="r")
        return entry
    except (OSError, ValueError):  # missing, or damaged by something other than us: compute it again
        pass
    spectrogram = compute_spectrogram(path, n_fft, hop_length, length, fit)
    with atomic_path(entry) as tmp, open(tmp, "wb") as f:
        np.save(f, spectrogram.numpy())
    stat = path.stat()
    source = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "n_fft": n_fft,
              "hop_length": hop_length, "length": length, "fit": fit, "version": VERSION}
    with atomic_path(entry.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(source) + "\n")
    return entry


class MappedSpectrograms:
    """Spectrograms [N, 1, F, T] kept in cache entries: an int or a slice gives a tensor (read from the
    mapped entries), a list of indices a lazy selection."""

    def __init__(self, entries: Sequence[Path], shape: tuple[int, ...]):
        self.entries = list(entries)
        self.shape = (len(self.entries), *shape)

    def __len__(self) -> int:
        return len(self.entries)

    def row(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(np.load(self.entries[i], mmap_mode="r")))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return torch.stack([self.row(i) for i in range(*index.indices(len(self)))])
        if isinstance(index, (list, tuple, torch.Tensor, np.ndarray)):
            return MappedSpectrograms([self.entries[int(i)] for i in index], self.shape[1:])
        return self.row(int(index))
