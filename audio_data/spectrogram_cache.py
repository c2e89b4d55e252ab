"""Spectrograms computed once and kept on disk, one `.npy` entry per recording, read memory-mapped.

An entry is named by a hash of the recording's bytes and the STFT parameters, so a changed recording gets
a new entry whatever its size and modification time, and the others stay valid. A `.json` index beside each
entry records where it came from and a CRC-32 of its values. An entry is checked once, when a dataset opens
it (float32, the expected shape, the checksum, finite values); a bad one is computed again with one warning.
Index and entry are each written to a temporary name and renamed, index first, so concurrent runs (and the
processes of a torchrun job) never read a half-written file. A dataset on a cache holds only the entries'
names: each item maps its entry, copies it and unmaps it, so resident memory follows what the batches touch,
not the size of the dataset.

The checks find damage, not forgery: whoever can write to the cache folder can replace a spectrogram.
"""

import hashlib
import json
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from audio_data.audio import fit_length, read_audio
from audio_data.spectrogram import spectrogram_db
from utils.errors import InputError
from utils.io_utils import atomic_path

VERSION = 2  # bump when the spectrogram definition or the entry format changes


def compute_spectrogram(path: Path, n_fft: int, hop_length: int, length: int, fit: bool,
                        reference: str = "peak", resample_to: int | None = None) -> torch.Tensor:
    """Decode, check and transform one recording, resampled to `resample_to` Hz if given; `fit` crops or pads it to
    `length`, else it must have that many."""
    samples, _ = read_audio(path, resample_to)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{path}: contains NaN or infinite samples")
    if not np.any(samples):
        raise InputError(f"{path}: silent (all samples are zero), so its dB spectrogram is meaningless")
    if fit:
        samples = fit_length(samples, length)
    elif len(samples) != length:
        raise InputError(f"{path}: header says {length} samples, but {len(samples)} could be decoded")
    return spectrogram_db(samples, n_fft, hop_length, reference)


def content_key(path: Path, n_fft: int, hop_length: int, length: int, fit: bool, reference: str = "peak",
                resample_to: int | None = None) -> str:
    """SHA-256 of the recording's bytes and of everything else that decides its spectrogram."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    digest.update(f"|{n_fft}|{hop_length}|{length}|{fit}|{VERSION}".encode())
    if reference != "peak":  # the entries of peak-referenced spectrograms keep their names
        digest.update(f"|{reference}".encode())
    if resample_to is not None:  # and those of recordings at the run's own rate
        digest.update(f"|resampled to {resample_to}".encode())
    return digest.hexdigest()[:40]


def entry_problem(entry: Path, shape: tuple[int, ...]) -> str | None:
    """What is wrong with an existing entry (None if it is sound): read once in full, when a dataset opens it."""
    try:
        checksum = json.loads(entry.with_suffix(".json").read_text())["crc32"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its index (.json) is missing or damaged"
    try:
        values = np.load(entry, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return f"cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if values.dtype != np.float32 or values.shape != shape:
        return f"holds {values.dtype} {values.shape}, not float32 {shape}"
    if zlib.crc32(np.ascontiguousarray(values)) != checksum:
        return "its values do not match the checksum in its index"
    if not np.isfinite(values).all():
        return "holds NaN or infinite values"
    return None


def cache_entry(path: Path, n_fft: int, hop_length: int, length: int, fit: bool, cache_dir: Path,
                reference: str = "peak", resample_to: int | None = None) -> Path:
    """The sound cache entry of this exact recording (resampled to `resample_to` Hz if given), computed and written
    first if missing or bad."""
    entry = Path(cache_dir) / (content_key(path, n_fft, hop_length, length, fit, reference, resample_to) + ".npy")
    shape = (1, n_fft // 2 + 1, 1 + length // hop_length)
    if entry.exists():
        problem = entry_problem(entry, shape)
        if problem is None:
            return entry
        warnings.warn(f"cache entry {entry} of {path}: {problem}; computing it again")
    values = np.ascontiguousarray(compute_spectrogram(path, n_fft, hop_length, length, fit, reference,
                                                      resample_to).numpy())
    index = {"path": str(path.resolve()), "n_fft": n_fft, "hop_length": hop_length, "length": length, "fit": fit,
             "reference": reference, "version": VERSION, "shape": list(values.shape), "crc32": zlib.crc32(values),
             **({"resampled_to": resample_to} if resample_to is not None else {})}
    with atomic_path(entry.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(index) + "\n")
    with atomic_path(entry) as tmp, open(tmp, "wb") as f:
        np.save(f, values)
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
