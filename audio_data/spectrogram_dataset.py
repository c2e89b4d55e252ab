"""Recordings of one or more frequencies and materials, as dB spectrograms with angle-class labels."""

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import one_hot
from torch.utils.data import Dataset

import config
from audio_data.audio import audio_info, is_audio, length_slack, resampled_length
from audio_data.manifest import Manifest, select_rows
from audio_data.naming import recording_labels, recording_name, recording_prefix
from audio_data.spectrogram_cache import MappedSpectrograms, cache_entry, compute_spectrogram
from audio_data.tone_features import FEATURES, feature_matrix
from utils.errors import InputError, first_few


@dataclass
class Selection:
    """The recordings a run takes, class by class: each one's class index, material and frequency, and where a
    manifest gives them its group, fixed split and other columns."""
    paths: list[Path]
    labels: list[int]
    materials: list[str]
    frequencies: list[str]
    groups: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    extra: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.paths)
        self.groups, self.splits = self.groups or [None] * n, self.splits or [None] * n
        self.extra = self.extra or [{} for _ in range(n)]

    def only(self, keep: list[Path]) -> "Selection":
        """The recordings at `keep` (a subset of the paths, in their order)."""
        at = {path: i for i, path in enumerate(self.paths)}
        return Selection(*([values[at[path]] for path in keep] for values in (
            self.paths, self.labels, self.materials, self.frequencies, self.groups, self.splits, self.extra)))

    @property
    def subsets(self) -> list[str]:
        """Each recording's subset (config.subset_name)."""
        return [config.subset_name(m, f) for m, f in zip(self.materials, self.frequencies)]


def manifest_recordings(manifest: Manifest, classes: list[str], frequency: str, material: str) -> Selection:
    """The manifest's rows of the run's classes, frequencies and materials, class by class in manifest order."""
    labelled = select_rows(manifest, classes, frequency.split(","), material.split(","))
    rows = [row for _, row in labelled]
    return Selection([row.path for row in rows], [label for label, _ in labelled], [row.material for row in rows],
                     [row.frequency for row in rows], [row.group for row in rows], [row.split for row in rows],
                     [row.extra for row in rows])


def find_recordings(data_dir: Path, classes: list[str], selected_seqs: list[str] | None,
                    frequency: str, material: str) -> Selection:
    """Paths and class indices of `<data_dir>/<class>/<material>/<material>_<class>_<freq>_<seq>.<ext>` (any audio
    file ending, in any case: audio_data/audio.py), class by class, each class's materials and each material's
    frequencies in the order given (`material`, `frequency`: one, or several separated by commas)."""
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data folder not found")
    wanted = None if selected_seqs is None else {str(s) for s in selected_seqs}
    paths, labels, frequencies, missing, left_out = [], [], [], [], []
    for label, class_name in enumerate(classes):
        for one in material.split(","):
            folder = data_dir / class_name / one
            if not folder.is_dir():
                missing.append(folder)
                continue
            files = sorted(p for p in folder.iterdir() if is_audio(p))
            for tone in frequency.split(","):
                prefix = recording_prefix(one, class_name, tone)
                for path in (p for p in files if p.name.startswith(prefix)):
                    if wanted is None or path.stem[len(prefix):] in wanted:
                        paths.append(path)
                        labels.append(label)
                        frequencies.append(tone)
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
    return Selection(paths, labels, [path.parent.name for path in paths], frequencies)


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


def model_features(measured: torch.Tensor, subset_index: torch.Tensor, subsets: int) -> torch.Tensor:
    """What a model that reads features gets beside each spectrogram: the columns measured on the recording
    `[N, MEASURED]` (tone_features.feature_matrix with its view), then in a run of several subsets a one-hot column
    per subset (the recording's, `subset_index`)."""
    if subsets == 1:
        return measured
    return torch.cat([measured, one_hot(subset_index, subsets).to(measured.dtype)], dim=1)


def named_subsets(paths: list[Path], names: list[str]) -> torch.Tensor:
    """Each recording's subset among a run's `names`, from its file name (`<material>_<class>_<frequency>_<seq>`):
    for recordings that a run pooling several subsets scores; an error naming a file of none of them."""
    at = {name: i for i, name in enumerate(names)}
    labels = [recording_labels(str(path)) for path in paths]
    found = [at.get(config.subset_name(label["material"], label["frequency"])) for label in labels]
    if odd := [str(path) for path, index in zip(paths, found) if index is None]:
        raise InputError(f"{odd[0]}: the run pools {', '.join(names)}, and a recording's file name "
                         "(<material>_<class>_<frequency>_<seq>) must say which of them it is"
                         + (f" ({len(odd) - 1} more such files)" if len(odd) > 1 else ""))
    return torch.tensor(found, dtype=torch.int64)


def subset_indices(subsets: list[str], names: list[str]) -> torch.Tensor:
    """Each recording's subset as an index into the run's subsets `names`; an error naming a subset without any."""
    if empty := [name for name in names if name not in set(subsets)]:
        raise InputError(f"no recordings of {', '.join(empty)}, which --material and --frequency pool: leave "
                         f"{'it' if len(empty) == 1 else 'them'} out")
    at = {name: i for i, name in enumerate(names)}
    return torch.tensor([at[subset] for subset in subsets], dtype=torch.int64)


class BadFiles:
    """Raises on a bad recording, or with skip=True warns once per file and counts."""

    def __init__(self, skip: bool):
        self.skip, self.paths = skip, []

    def add(self, path: Path, error: InputError) -> None:
        if not self.skip:
            raise error
        warnings.warn(f"skipping {error}")
        self.paths.append(path)


def check_headers(found: list[Path], bad: BadFiles, duration: float | None,
                  sample_rate: int | None = None) -> tuple[dict[Path, int], int, int]:
    """From the files' headers: the usable recordings with each one's own sample rate, the run's sample rate
    (`sample_rate`, or the rate most recordings have) and the length to use at that rate. One line says how many
    recordings will be resampled."""
    headers = {}
    for path in found:
        try:
            headers[path] = audio_info(path)
        except InputError as exc:
            bad.add(path, exc)
    if not headers:
        raise InputError(f"none of the {len(found)} recordings could be read, e.g. {found[0]}")
    rate = sample_rate or Counter(rate for _, rate in headers.values()).most_common(1)[0][0]
    if resampled := sum(own != rate for _, own in headers.values()):
        print(f"resampling {resampled} of {len(headers)} recordings to {rate} Hz "
              f"({'--sample-rate' if sample_rate else 'the rate most of them have; --sample-rate sets another'})",
              flush=True)
    paths = list(headers)
    if duration is not None:
        return {path: headers[path][1] for path in paths}, rate, int(round(duration * rate))
    lengths = {path: resampled_length(frames, own, rate) for path, (frames, own) in headers.items()}
    native = [lengths[path] for path in paths if headers[path][1] == rate]
    common = Counter(native or lengths.values()).most_common(1)[0][0]
    for path, (_, own) in headers.items():  # as long as the others, to the sample their rate can tell
        if abs(lengths[path] - common) <= length_slack(own, rate):
            lengths[path] = common
    paths, length = common_value(paths, [lengths[path] for path in paths], bad, "length", "samples")
    return {path: headers[path][1] for path in paths}, rate, length


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
    """The selected recordings: `.data` [N, 1, F, T], `.labels` [N], `.paths`, `.materials` (each one's),
    `.subset_index` [N] (each one's subset among `.subset_names`, the `<material>_<frequency>` that the run pools),
    and `.selection` (also each one's frequency, group, fixed split and manifest columns).

    The recordings are those of the folder layout under `data_dir`, or with `manifest` the manifest's rows.

    `.data` is a tensor in memory, or with `cache_dir` a MappedSpectrograms over the cache entries.

    Recordings at another rate than `sample_rate` (default: the rate most have) are resampled to it. `duration`
    (seconds) crops or zero-pads every recording to that length; otherwise all must have the same length (at the
    run's rate). With `skip_bad_files`, unreadable, empty, silent or non-finite recordings and (without
    `duration`) those of another length than most are skipped with a warning each; otherwise they are errors
    naming the file.
    """

    def __init__(self, data_dir: str | Path, classes: list[str], selected_seqs: list[str] | None,
                 selected_freq: str, material: str, n_fft: int = config.N_FFT,
                 hop_length: int = config.HOP_LENGTH, cache_dir: str | Path | None = None,
                 duration: float | None = None, skip_bad_files: bool = False, db_reference: str = "peak",
                 sample_rate: int | None = None, manifest: Manifest | None = None):
        selection = (manifest_recordings(manifest, classes, selected_freq, material) if manifest is not None
                     else find_recordings(Path(data_dir), classes, selected_seqs, selected_freq, material))
        found = selection.paths
        bad = BadFiles(skip_bad_files)
        rates, sample_rate, length = check_headers(found, bad, duration, sample_rate)
        paths = list(rates)
        if length <= n_fft // 2:
            raise InputError(f"recordings of {length} samples are too short for n_fft {n_fft} "
                             f"(need more than {n_fft // 2}), e.g. {paths[0]}")
        shape = (1, n_fft // 2 + 1, 1 + length // hop_length)
        # Filled in place rather than stacked: a stack would hold every spectrogram twice.
        data = torch.empty((len(paths), *shape)) if cache_dir is None else []
        loaded = []
        for path in paths:
            resample_to = sample_rate if rates[path] != sample_rate else None
            fit = duration is not None or resample_to is not None  # a resampled one may be a sample off
            try:
                if cache_dir is None:
                    data[len(loaded)] = compute_spectrogram(path, n_fft, hop_length, length, fit, db_reference,
                                                            resample_to)
                else:
                    data.append(cache_entry(path, n_fft, hop_length, length, fit, cache_dir, db_reference,
                                            resample_to))
                loaded.append(path)
            except InputError as exc:
                bad.add(path, exc)
        if bad.paths:
            warnings.warn(f"skipped {len(bad.paths)} of {len(found)} recordings")
        self.selection = selection.only(loaded)
        self.classes = list(classes)
        self.sample_rate, self.length = sample_rate, length
        self.frequency, self.cropped = selected_freq, duration is not None
        self.features: torch.Tensor | None = None  # the physical features, once load_features has read them
        self.paths = [str(path) for path in loaded]
        self.materials = self.selection.materials
        self.subset_names = config.subset_names(material, selected_freq)
        self.subset_index = subset_indices(self.selection.subsets, self.subset_names)
        self.labels = torch.tensor(self.selection.labels, dtype=torch.int64)
        self.data = data[:len(loaded)] if cache_dir is None else MappedSpectrograms(data, shape)
        self.manifest_sha256 = manifest.sha256 if manifest is not None else None
        if len(set(self.labels.tolist())) < 2:
            raise InputError(f"recordings of fewer than two classes are left under "
                             f"{manifest.path if manifest is not None else data_dir}")

    def load_features(self) -> torch.Tensor:
        """`.features`, float64, what a model that reads features gets beside each spectrogram: the recording's
        physical features and onset view (audio_data/tone_features.py), read from its file at the run's rate (and
        length, with --duration) on the first call, then where the run pools several subsets a one-hot column per
        subset (`subset_index`): `[N, MEASURED (+ len(subset_names))]`."""
        if self.features is None:
            measured = torch.from_numpy(feature_matrix(self.paths, self.selection.frequencies,
                                                       self.length if self.cropped else None, self.sample_rate,
                                                       view=True))
            self.features = model_features(measured, self.subset_index, len(self.subset_names))
        return self.features

    def physical_features(self) -> np.ndarray:
        """The physical features alone `[N, len(FEATURES)]` (`load_features`' first columns): the baselines'."""
        return self.load_features()[:, :len(FEATURES)].numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]


def fitting_spectrograms(paths: list[Path], n_fft: int, hop_length: int, sample_rate: int, length: int,
                         duration: float | None, skip_bad_files: bool, db_reference: str = "peak"
                         ) -> tuple[torch.Tensor, list[Path]]:
    """Spectrograms of recordings scored by a trained run (predict.py), resampled to the run's sample rate where
    theirs differs: each must be readable and (unless the run crops or pads to --duration) have the run's length at
    its rate, else it is an error naming the file, or with `skip_bad_files` skipped with a warning. Returns the
    spectrograms and the paths kept."""
    bad, fitting = BadFiles(skip_bad_files), {}
    for path in paths:
        try:
            frames, rate = audio_info(path)
            at_run_rate = resampled_length(frames, rate, sample_rate)
            if duration is None and abs(at_run_rate - length) > length_slack(rate, sample_rate):
                raise InputError(f"{path}: {at_run_rate} samples at {sample_rate} Hz; the run's recordings have "
                                 f"{length} (a run trained with --duration crops or pads instead)")
            fitting[path] = sample_rate if rate != sample_rate else None
        except InputError as exc:
            bad.add(path, exc)
    data, kept = torch.empty((len(fitting), 1, n_fft // 2 + 1, 1 + length // hop_length)), []
    for path, resample_to in fitting.items():
        try:
            data[len(kept)] = compute_spectrogram(path, n_fft, hop_length, length,
                                                  duration is not None or resample_to is not None, db_reference,
                                                  resample_to)
            kept.append(path)
        except InputError as exc:
            bad.add(path, exc)
    if bad.paths:
        warnings.warn(f"skipped {len(bad.paths)} of {len(paths)} recordings")
    return data[:len(kept)], kept
