"""Simple rankers beside the CNN (`python -m analysis.baselines RUN` compares a run with them).

Each recording gets a handful of numbers measured on its raw samples (Hann-windowed frames of about 50 ms, half
overlapping; levels in dB relative to full scale, a full-scale sine being 0 dBFS):
  * tone_level_db: the tone's level, the 75th percentile over frames of the power within ±3 bins of the tone
    (the steady part of a tone that sounds for most of the recording);
  * noise_floor_db: the median over frames of the power outside ±10 bins of the tone (and of DC);
  * tone_to_noise_db: their difference;
  * broadband_level_db: the whole recording's RMS level, what a plain level meter shows;
and two from the tone's envelope at about a millisecond's resolution (`tone_envelope`), which physics ties to the
angle where the level cannot (a source's own level and a room's standing waves change the level, not these):
  * onset_to_steady_db: the envelope over the first ONSET_S after the tone starts (mostly the direct sound, before
    the room's reverberation has built up) relative to its steady level: a direct-to-reverberant ratio;
  * early_decay_db_per_s: how fast the envelope falls over its first DECAY_DB after the tone stops (the direct
    sound stops at once, the reverberation fades at the room's rate).
The rankers are fitted on the run's training recordings: each number alone (its sign chosen by the training
pairs; broadband level only in the logistic ranker), and a pairwise logistic ranker on all of them (standardised;
L2 1e-2; Newton's method), which scores a recording by w·x. Both are fitted on every training pair of different
classes (a seeded sample of MAX_PAIRS where there are more). Each is measured like the CNN, over all pairs of the
evaluation recordings. The best baseline is the one with the highest all-pairs accuracy on those same recordings:
chosen after the fact, so the comparison with the CNN is on the baselines' side.
"""

import numpy as np

from analysis.ranking_metrics import ranking_metrics
from audio_data.audio import fit_length, read_audio
from audio_data.classes import frequency_hz
from config import DataConfig

FEATURES = ("tone_level_db", "noise_floor_db", "tone_to_noise_db", "broadband_level_db", "onset_to_steady_db",
            "early_decay_db_per_s")
SINGLE = tuple(f for f in FEATURES if f != "broadband_level_db")  # rankers on one number each
LOGISTIC = f"logistic ({len(FEATURES)} features)"
ENVELOPE_S = 0.001  # the envelope's resolution, at least two periods of the tone
ONSET_S = 0.010  # the onset window: the direct sound, before most of the reverberation arrives
ON_DB, START_DB, STOP_DB, DECAY_DB = -20.0, -20.0, -3.0, 20.0  # dB: tone on, its start, its stop, the decay fitted
FRAME_S = 0.05
TONE_BINS, NOISE_GUARD_BINS = 3, 10
L2 = 1e-2
MAX_PAIRS = 200_000  # training pairs the rankers are fitted on, at most
FIGURES = ("pairwise_accuracy", "kendall_tau_b", "spearman_rho")


def power_db(mean_square: np.ndarray) -> np.ndarray:
    """dBFS of a mean square (a full-scale sine, mean square 1/2, is 0 dBFS)."""
    return 10 * np.log10(np.maximum(2 * mean_square, 1e-20))


def frame_spectra(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-frame one-sided power spectra scaled so that a band's sum is its mean square, bin frequencies)."""
    size = 1 << max(5, int(np.ceil(np.log2(FRAME_S * sample_rate))))
    samples = np.pad(samples, (0, max(0, size - len(samples))))
    window = np.hanning(size)
    starts = np.arange(0, len(samples) - size + 1, size // 2)
    frames = samples[starts[:, None] + np.arange(size)] * window
    power = 2 * np.abs(np.fft.rfft(frames, axis=1)) ** 2 / (size * np.sum(window ** 2))
    return power, np.fft.rfftfreq(size, 1 / sample_rate)


def recording_features(samples: np.ndarray, sample_rate: int, hz: float | None) -> np.ndarray:
    """FEATURES of one recording; `hz` None: the tone is the strongest bin of the mean spectrum."""
    samples = np.asarray(samples, np.float64)
    power, freqs = frame_spectra(samples, sample_rate)
    bins = np.arange(len(freqs))
    peak = int(np.argmax(power[:, 1:].mean(axis=0))) + 1 if hz is None else int(np.argmin(np.abs(freqs - hz)))
    tone = power[:, np.abs(bins - peak) <= TONE_BINS].sum(axis=1)
    outside = (np.abs(bins - peak) > NOISE_GUARD_BINS) & (bins > 0)
    level = power_db(np.percentile(tone, 75))
    floor = power_db(np.median(power[:, outside].sum(axis=1)))
    broadband = power_db(np.mean(samples ** 2))
    onset, decay = envelope_features(tone_envelope(samples, sample_rate, freqs[peak]), sample_rate)
    return np.array([level, floor, level - floor, broadband, onset, decay])


def tone_envelope(samples: np.ndarray, sample_rate: int, hz: float) -> np.ndarray:
    """The tone's amplitude over time: the samples shifted down by `hz` (complex demodulation) and averaged over
    ENVELOPE_S, or two periods of the tone where that is longer, so that neighbouring frequencies cancel."""
    width = max(1, int(round(max(ENVELOPE_S, 2 / max(hz, 1.0)) * sample_rate)))
    shifted = samples * np.exp(-2j * np.pi * hz * np.arange(len(samples)) / sample_rate)
    return 2 * np.abs(np.convolve(shifted, np.full(width, 1 / width), mode="same"))


def envelope_features(envelope: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(onset_to_steady_db, early_decay_db_per_s) of a tone's envelope: the steady level is the median over the
    middle half of the time the envelope is within ON_DB of its peak; the tone starts where the envelope first
    reaches START_DB (relative to the steady level) and stops where it last is above STOP_DB; the early decay is
    the slope of a line through the envelope in dB from the stop until it has fallen DECAY_DB (at most 100 ms)."""
    db = 20 * np.log10(np.maximum(envelope, 1e-12))
    on = np.flatnonzero(db >= db.max() + ON_DB)
    middle = on[len(on) // 4: max(len(on) // 4 + 1, 3 * len(on) // 4)]
    steady = float(np.median(db[middle]))
    start = int(np.flatnonzero(db >= steady + START_DB)[0])
    stop = int(np.flatnonzero(db >= steady + STOP_DB)[-1])
    onset = float(np.mean(envelope[start:start + max(1, int(ONSET_S * sample_rate))]))
    tail = db[stop:stop + int(0.1 * sample_rate)] - steady
    fallen = np.flatnonzero(tail <= STOP_DB - DECAY_DB)
    tail = tail[:max(int(fallen[0]) if len(fallen) else len(tail), 2)]
    slope = np.polyfit(np.arange(len(tail)) / sample_rate, tail, 1)[0] if len(tail) >= 2 else 0.0
    return 20 * np.log10(max(onset, 1e-12)) - steady, float(slope)


def feature_matrix(paths: list[str], frequency: str, length: int | None,
                   sample_rate: int | None = None) -> np.ndarray:
    """[n, len(FEATURES)] for the recordings at `paths`, resampled to `sample_rate` if given and cropped or padded
    to `length` samples if given (as a run does with recordings at another rate and with --duration)."""
    rows = []
    for path in paths:
        samples, sample_rate = read_audio(path, sample_rate)
        rows.append(recording_features(samples if length is None else fit_length(samples, length), sample_rate,
                                       frequency_hz(frequency)))
    return np.array(rows).reshape(len(paths), len(FEATURES))


def pair_differences(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x_i − x_j and sign(label_i − label_j) for the pairs i < j of different classes: all of them, or a seeded
    sample of MAX_PAIRS where there are more (a lab's thousands of recordings would need gigabytes)."""
    i, j = np.triu_indices(len(labels), k=1)
    keep = np.flatnonzero(labels[i] != labels[j])
    if len(keep) > MAX_PAIRS:
        keep = np.sort(np.random.default_rng(0).choice(keep, MAX_PAIRS, replace=False))
    i, j = i[keep], j[keep]
    return x[i] - x[j], np.sign(labels[i] - labels[j]).astype(np.float64)


def fit_logistic(d: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """w minimising Σ log(1 + exp(−y w·d)) + L2/2 · n_pairs · |w|² over the pairs' feature differences d and
    targets y (Newton's method)."""
    w = np.zeros(d.shape[1])
    for _ in range(iterations):
        margin = y * (d @ w)
        p = 0.5 * (1 - np.tanh(margin / 2))  # σ(−margin), without overflow
        gradient = -(d * (y * p)[:, None]).sum(axis=0) + L2 * len(y) * w
        hessian = (d * (p * (1 - p))[:, None]).T @ d + L2 * len(y) * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def fit_rankers(x: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    """{name: {"weights": over FEATURES, "offset", "train_pairwise_accuracy"}} fitted on the training recordings'
    pairs: a recording's score is (x − offset)·weights."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    d, y = pair_differences((x - mean) / std, labels)
    rankers = {}
    for name in SINGLE:
        k = FEATURES.index(name)
        w = np.eye(len(FEATURES))[k]
        rankers[name] = w if np.mean(d[:, k] * y > 0) >= 0.5 else -w
    rankers[LOGISTIC] = fit_logistic(d, y)
    return {name: {"weights": w / std, "offset": mean, "train_pairwise_accuracy": float(np.mean((d @ w) * y > 0))}
            for name, w in rankers.items()}


def baseline_report(x: np.ndarray, labels: np.ndarray, train: list[int], evaluated: list[int],
                    classes: list[str]) -> dict:
    """Each ranker's training and evaluation figures, and which is best on the evaluation recordings."""
    report = {}
    for name, ranker in fit_rankers(x[train], labels[train]).items():
        scores = (x - ranker["offset"]) @ ranker["weights"]
        measured = ranking_metrics(scores[evaluated], labels[evaluated], classes)
        report[name] = {"weights": dict(zip(FEATURES, ranker["weights"].tolist())),
                        "train_pairwise_accuracy": ranker["train_pairwise_accuracy"],
                        **{key: measured[key] for key in FIGURES}}
    best = max(report, key=lambda name: np.nan_to_num(report[name]["pairwise_accuracy"], nan=-1.0))
    return {"features": list(FEATURES), "rankers": report, "best": best}


def run_baselines(recordings, train: list[int], evaluated: list[int], data: DataConfig) -> dict:
    """baseline_report on a run's recordings (a SpectrogramDatasetWithMaterial, loaded with `data`), read again from
    their files at the run's length; the features of each evaluated recording come along (`recordings`: path →
    FEATURES values)."""
    used = sorted(set(train) | set(evaluated))
    length = recordings.length if data.duration is not None else None
    x = np.full((len(recordings), len(FEATURES)), np.nan)
    x[used] = feature_matrix([recordings.paths[i] for i in used], data.frequency, length, recordings.sample_rate)
    report = baseline_report(x, recordings.labels.numpy(), train, evaluated, recordings.classes)
    return {**report, "recordings": {recordings.paths[i]: x[i].tolist() for i in evaluated}}
