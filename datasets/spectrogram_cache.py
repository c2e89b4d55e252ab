"""Spectrograms computed once and kept on disk, one `.npy` entry per recording.

An entry's name hashes the recording's absolute path, size and modification time and the STFT
parameters, so a changed file gets a new entry and the others stay valid. Entries are written to a
temporary name and renamed, so concurrent runs never read a half-written one.
"""

import hashlib
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


def load_spectrogram(path: Path, n_fft: int, hop_length: int, length: int, fit: bool = False,
                     cache_dir: Path | None = None) -> torch.Tensor:
    """The recording's spectrogram, from `cache_dir` when an entry for this exact file exists."""
    if cache_dir is None:
        return compute_spectrogram(path, n_fft, hop_length, length, fit)
    entry = Path(cache_dir) / entry_name(path, n_fft, hop_length, length, fit)
    try:
        return torch.from_numpy(np.load(entry))
    except (OSError, ValueError):  # missing, or damaged by something other than us: compute it again
        pass
    spectrogram = compute_spectrogram(path, n_fft, hop_length, length, fit)
    with atomic_path(entry) as tmp, open(tmp, "wb") as f:
        np.save(f, spectrogram.numpy())
    return spectrogram
