"""Recordings of one frequency and one or more materials, as dB spectrograms with angle-class labels."""

import warnings
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import Dataset

import config
from audio_data.audio import wav_info
from audio_data.naming import SUFFIX, recording_name, recording_prefix
from audio_data.spectrogram_cache import MappedSpectrograms, cache_entry, compute_spectrogram
from utils.errors import InputError, first_few


def find_recordings(data_dir: Path, classes: list[str], selected_seqs: list[str] | None,
                    frequency: str, material: str) -> tuple[list[Path], list[int]]:
    """Paths and class indices of `<data_dir>/<class>/<material>/<material>_<class>_<freq>_<seq>.wav`, class by
    class, each class's materials in the order given (`material`: one, or several separated by commas)."""
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data folder not found")
    wanted = None if selected_seqs is None else {str(s) for s in selected_seqs}
    paths, labels, missing, left_out = [], [], [], []
    for label, class_name in enumerate(classes):
        for one in material.split(","):
            folder = data_dir / class_name / one
            if not folder.is_dir():
                missing.append(folder)
                continue
            prefix = recording_prefix(one, class_name, frequency)
            for path in sorted(folder.glob(f"{prefix}*{SUFFIX}")):
                if wanted is None or path.stem[len(prefix):] in wanted:
                    paths.append(path)
                    labels.append(label)
                else:
                    left_out.append(path.stem[len(prefix):])
    if left_out:
        warnings.warn(f"--seqs: {len(left_out)} recordings with other sequence numbers are left out ("
                      f"{first_few(sorted(set(left_out)))}); --seqs all takes every one")
    if not paths:
        pattern = data_dir / "<class>" / material / recording_name(material, "<class>", frequency, "<seq>")
        raise InputError(f"no recordings found matching {pattern}")
    for folder in missing:
        warnings.warn(f"{folder}: folder missing, class {folder.parent.name} has no {folder.name} recordings")
    found = sorted({classes[label] for label in labels})
    if len(found) < 2:
        raise InputError(f"recordings found for one class only ({found[0]}, under {data_dir}); "
                         "ranking needs at least two classes")
    return paths, labels


def odd_ones(paths: list[Path], values: list[int]) -> tuple[int, list[Path]]:
    """The most common value and the paths whose value differs from it."""
    common, _ = Counter(values).most_common(1)[0]
    return common, [path for path, value in zip(paths, values) if value != common]


def check_all_equal(paths: list[Path], values: list[int], what: str) -> int:
    """The common value; raise naming the files whose `what` differs from it."""
    common, odd = odd_ones(paths, values)
    if odd:
        by_path = dict(zip(paths, values))
        raise InputError(f"recordings differ in {what}: most have {common}, but "
                         + ", ".join(f"{path} ({by_path[path]})" for path in odd))
    return common


class BadFiles:
    """Raises on a bad recording, or with skip=True warns once per file and counts."""

    def __init__(self, skip: bool):
        self.skip, self.paths = skip, []

    def add(self, path: Path, error: InputError) -> None:
        if not self.skip:
            raise error
        warnings.warn(f"skipping {error}")
        self.paths.append(path)


def check_headers(found: list[Path], bad: BadFiles, duration: float | None) -> tuple[list[Path], int, int]:
    """From the files' headers: the usable recordings, their common sample rate and the length to use."""
    headers = {}
    for path in found:
        try:
            headers[path] = wav_info(path)
        except InputError as exc:
            bad.add(path, exc)
    paths = list(headers)
    if not paths:
        raise InputError(f"none of the {len(found)} recordings could be read, e.g. {found[0]}")
    paths, sample_rate = common_value(paths, [headers[path][1] for path in paths], bad, "sample rate", "Hz")
    if duration is not None:
        return paths, sample_rate, int(round(duration * sample_rate))
    paths, length = common_value(paths, [headers[path][0] for path in paths], bad, "length", "samples")
    return paths, sample_rate, length


def common_value(paths: list[Path], values: list[int], bad: BadFiles, what: str, unit: str) -> tuple[list[Path], int]:
    """The most common value and the paths that have it; every other path is an error, or with skip a skip."""
    if not bad.skip:
        return paths, check_all_equal(paths, values, f"{what} ({unit})")
    common, odd = odd_ones(paths, values)
    by_path = dict(zip(paths, values))
    for path in odd:
        bad.add(path, InputError(f"{path}: {what} {by_path[path]} {unit}, most have {common} {unit}"))
    return [path for path in paths if by_path[path] == common], common


class SpectrogramDatasetWithMaterial(Dataset):
    """The selected recordings: `.data` [N, 1, F, T], `.labels` [N], `.paths`, `.materials` (each one's).

    `.data` is a tensor in memory, or with `cache_dir` a MappedSpectrograms over the cache entries.

    `duration` (seconds) crops or zero-pads every recording to that length; otherwise all must have the
    same length. With `skip_bad_files`, unreadable, empty, silent or non-finite recordings and those at
    another sample rate or (without `duration`) of another length than most are skipped with a warning each;
    otherwise they are errors naming the file.
    """

    def __init__(self, data_dir: str | Path, classes: list[str], selected_seqs: list[str] | None,
                 selected_freq: str, material: str, n_fft: int = config.N_FFT,
                 hop_length: int = config.HOP_LENGTH, cache_dir: str | Path | None = None,
                 duration: float | None = None, skip_bad_files: bool = False, db_reference: str = "peak"):
        found, found_labels = find_recordings(Path(data_dir), classes, selected_seqs, selected_freq, material)
        bad = BadFiles(skip_bad_files)
        paths, sample_rate, length = check_headers(found, bad, duration)
        if length <= n_fft // 2:
            raise InputError(f"recordings of {length} samples are too short for n_fft {n_fft} "
                             f"(need more than {n_fft // 2}), e.g. {paths[0]}")
        shape = (1, n_fft // 2 + 1, 1 + length // hop_length)
        # Filled in place rather than stacked: a stack would hold every spectrogram twice.
        data = torch.empty((len(paths), *shape)) if cache_dir is None else []
        loaded = []
        for path in paths:
            try:
                if cache_dir is None:
                    data[len(loaded)] = compute_spectrogram(path, n_fft, hop_length, length, duration is not None,
                                                            db_reference)
                else:
                    data.append(cache_entry(path, n_fft, hop_length, length, duration is not None, cache_dir,
                                            db_reference))
                loaded.append(path)
            except InputError as exc:
                bad.add(path, exc)
        if bad.paths:
            warnings.warn(f"skipped {len(bad.paths)} of {len(found)} recordings")
        label_of = dict(zip(found, found_labels))
        self.classes = list(classes)
        self.sample_rate, self.length = sample_rate, length
        self.paths = [str(path) for path in loaded]
        self.materials = [path.parent.name for path in loaded]
        self.labels = torch.tensor([label_of[path] for path in loaded], dtype=torch.int64)
        self.data = data[:len(loaded)] if cache_dir is None else MappedSpectrograms(data, shape)
        if len(set(self.labels.tolist())) < 2:
            raise InputError(f"recordings of fewer than two classes are left under {data_dir}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]


def fitting_spectrograms(paths: list[Path], n_fft: int, hop_length: int, sample_rate: int, length: int,
                         duration: float | None, skip_bad_files: bool, db_reference: str = "peak"
                         ) -> tuple[torch.Tensor, list[Path]]:
    """Spectrograms of recordings scored by a trained run (predict.py): each must be readable and have the run's
    sample rate and (unless the run crops or pads to --duration) its length, else it is an error naming the
    file, or with `skip_bad_files` skipped with a warning. Returns the spectrograms and the paths kept."""
    bad, fitting = BadFiles(skip_bad_files), []
    for path in paths:
        try:
            frames, rate = wav_info(path)
            if rate != sample_rate:
                raise InputError(f"{path}: sample rate {rate} Hz; the run's recordings have {sample_rate} Hz")
            if duration is None and frames != length:
                raise InputError(f"{path}: {frames} samples; the run's recordings have {length} (a run trained "
                                 "with --duration crops or pads instead)")
            fitting.append(path)
        except InputError as exc:
            bad.add(path, exc)
    data, kept = torch.empty((len(fitting), 1, n_fft // 2 + 1, 1 + length // hop_length)), []
    for path in fitting:
        try:
            data[len(kept)] = compute_spectrogram(path, n_fft, hop_length, length, duration is not None, db_reference)
            kept.append(path)
        except InputError as exc:
            bad.add(path, exc)
    if bad.paths:
        warnings.warn(f"skipped {len(bad.paths)} of {len(paths)} recordings")
    return data[:len(kept)], kept
