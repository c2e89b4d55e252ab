"""Recordings of one material and frequency, as dB spectrograms with angle-class labels."""

import warnings
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import Dataset

import config
from datasets.audio import wav_info
from datasets.spectrogram_cache import load_spectrogram
from utils.errors import InputError


def recording_name(material: str, class_name: str, frequency: str, seq: str) -> str:
    return f"{material}_{class_name}_{frequency}_{seq}.wav"


def find_recordings(data_dir: Path, classes: list[str], selected_seqs: list[str] | None,
                    frequency: str, material: str) -> tuple[list[Path], list[int]]:
    """Paths and class indices of `<data_dir>/<class>/<material>/<material>_<class>_<freq>_<seq>.wav`."""
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data folder not found")
    wanted = None if selected_seqs is None else {str(s) for s in selected_seqs}
    paths, labels, missing = [], [], []
    for label, class_name in enumerate(classes):
        folder = data_dir / class_name / material
        if not folder.is_dir():
            missing.append(folder)
            continue
        prefix = recording_name(material, class_name, frequency, "")[:-len(".wav")]
        for path in sorted(folder.glob(f"{prefix}*.wav")):
            if wanted is None or path.stem[len(prefix):] in wanted:
                paths.append(path)
                labels.append(label)
    if not paths:
        pattern = data_dir / "<class>" / material / recording_name(material, "<class>", frequency, "<seq>")
        raise InputError(f"no recordings found matching {pattern}")
    for folder in missing:
        warnings.warn(f"{folder}: folder missing, class {folder.parent.name} has no {material} recordings")
    found = sorted({classes[label] for label in labels})
    if len(found) < 2:
        raise InputError(f"recordings found for one class only ({found[0]}, under {data_dir}); "
                         "ranking needs at least two classes")
    return paths, labels


def check_all_equal(paths: list[Path], values: list[int], what: str) -> None:
    """Raise naming the files whose `what` differs from the most common value."""
    common, _ = Counter(values).most_common(1)[0]
    odd = [f"{path} ({value})" for path, value in zip(paths, values) if value != common]
    if odd:
        raise InputError(f"recordings differ in {what}: most have {common}, but "
                         + ", ".join(odd))


class SpectrogramDatasetWithMaterial(Dataset):
    """All selected recordings held in memory: `.data` [N, 1, F, T], `.labels` [N], `.paths`."""

    def __init__(self, data_dir: str | Path, classes: list[str], selected_seqs: list[str] | None,
                 selected_freq: str, material: str, n_fft: int = config.N_FFT,
                 hop_length: int = config.HOP_LENGTH, cache_dir: str | Path | None = None):
        paths, labels = find_recordings(Path(data_dir), classes, selected_seqs, selected_freq, material)
        headers = [wav_info(path) for path in paths]
        check_all_equal(paths, [rate for _, rate in headers], "sample rate (Hz)")
        check_all_equal(paths, [length for length, _ in headers], "length (samples)")
        length = headers[0][0]
        if length <= n_fft // 2:
            raise InputError(f"{paths[0]}: recordings of {length} samples are too short "
                             f"for n_fft {n_fft} (need more than {n_fft // 2})")
        self.classes = list(classes)
        self.sample_rate = headers[0][1]
        self.paths = [str(path) for path in paths]
        self.labels = torch.tensor(labels, dtype=torch.int64)
        # Filled in place rather than stacked: a stack would hold every spectrogram twice.
        self.data = torch.empty((len(paths), 1, n_fft // 2 + 1, 1 + length // hop_length))
        for i, path in enumerate(paths):
            self.data[i] = load_spectrogram(path, n_fft, hop_length, length, cache_dir)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]
