"""A tone recording's physical features, measured on its raw samples (Hann-windowed frames of about 50 ms, half
overlapping; levels in dB relative to full scale, a full-scale sine being 0 dBFS):
  * tone_level_db: the tone's level, the 75th percentile over frames of the power within ±3 bins of the tone
    (the steady part of a tone that sounds for most of the recording);
  * noise_floor_db: the median over frames of the power outside ±10 bins of the tone (and of DC);
  * tone_to_noise_db: their difference;
  * broadband_level_db: the whole recording's RMS level, what a plain level meter shows;
and three from the tone's envelope at about a millisecond's resolution (`tone_envelope`), which physics ties to the
angle where the level cannot (a source's own level and a room's standing waves change the level, not these):
  * onset_to_steady_db: the envelope over the first ONSET_S after the tone starts (mostly the direct sound, before
    the room's reverberation has built up) relative to its steady level: a direct-to-reverberant ratio;
  * early_decay_db_per_s: how fast the envelope falls over its first DECAY_DB after the tone stops (the direct
    sound stops at once, the reverberation fades at the room's rate);
  * onset_rise_db: the onset view's mean over the RISE_MS before the tone's start (where it first reaches START_DB
    below its steady level), relative to the steady level: how far the tone has built up by then, the more the
    weaker its direct sound against the reflections that follow it.
The simple baselines (analysis/baseline_rankers.py) rank by them, and the baseline-residual model reads them.
Beside them the onset view (`onset_view`): the envelope itself, millisecond by millisecond, around the tone's start
and around its stop, for a model that learns from its shape (models/onset_residual.py).
"""

import numpy as np

from audio_data.audio import fit_length, read_audio
from audio_data.classes import frequency_hz

FEATURES = ("tone_level_db", "noise_floor_db", "tone_to_noise_db", "broadband_level_db", "onset_to_steady_db",
            "early_decay_db_per_s", "onset_rise_db")
ENVELOPE_S = 0.001  # the envelope's resolution, at least two periods of the tone
ONSET_S = 0.010  # the onset window: the direct sound, before most of the reverberation arrives
ON_DB, START_DB, STOP_DB, DECAY_DB = -20.0, -20.0, -3.0, 20.0  # dB: tone on, its start, its stop, the decay fitted
VIEW_MS = (-5, 40)  # the onset view: from 5 ms before the tone's start (or stop) to 40 ms after it, ms by ms
VIEW_POINTS = 2 * (VIEW_MS[1] - VIEW_MS[0])  # around the start, then around the stop
VIEW_RANGE_DB = (-60.0, 20.0)  # the view's dB relative to the steady level, clipped to this
RISE_MS = 5  # onset_rise_db: the view's last milliseconds before the tone's start
MEASURED = len(FEATURES) + VIEW_POINTS  # the columns measured on a recording that a model reads: FEATURES, view
VIEW = slice(len(FEATURES), MEASURED)  # the view's columns among them
FRAME_S = 0.05
TONE_BINS, NOISE_GUARD_BINS = 3, 10


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


def recording_features(samples: np.ndarray, sample_rate: int, hz: float | None, view: bool = False) -> np.ndarray:
    """FEATURES of one recording, then with `view` its onset view (VIEW_POINTS values); `hz` None: the tone is the
    strongest bin of the mean spectrum."""
    samples = np.asarray(samples, np.float64)
    power, freqs = frame_spectra(samples, sample_rate)
    bins = np.arange(len(freqs))
    peak = int(np.argmax(power[:, 1:].mean(axis=0))) + 1 if hz is None else int(np.argmin(np.abs(freqs - hz)))
    tone = power[:, np.abs(bins - peak) <= TONE_BINS].sum(axis=1)
    outside = (np.abs(bins - peak) > NOISE_GUARD_BINS) & (bins > 0)
    level = power_db(np.percentile(tone, 75))
    floor = power_db(np.median(power[:, outside].sum(axis=1)))
    broadband = power_db(np.mean(samples ** 2))
    envelope = tone_envelope(samples, sample_rate, freqs[peak])
    seen = onset_view(envelope, sample_rate)
    rise = np.mean(seen[-VIEW_MS[0] - RISE_MS:-VIEW_MS[0]])  # the start view's points from -RISE_MS ms to -1 ms
    features = np.array([level, floor, level - floor, broadband, *envelope_features(envelope, sample_rate), rise])
    return np.concatenate([features, seen]) if view else features


def tone_envelope(samples: np.ndarray, sample_rate: int, hz: float) -> np.ndarray:
    """The tone's amplitude over time: the samples shifted down by `hz` (complex demodulation) and averaged over
    ENVELOPE_S, or two periods of the tone where that is longer, so that neighbouring frequencies cancel."""
    width = max(1, int(round(max(ENVELOPE_S, 2 / max(hz, 1.0)) * sample_rate)))
    shifted = samples * np.exp(-2j * np.pi * hz * np.arange(len(samples)) / sample_rate)
    return 2 * np.abs(np.convolve(shifted, np.full(width, 1 / width), mode="same"))


def envelope_marks(envelope: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """(the envelope in dB, its steady level, where the tone starts, where it stops): the steady level is the median
    over the middle half of the time the envelope is within ON_DB of its peak; the tone starts where the envelope
    first reaches START_DB (relative to the steady level) and stops where it last is above STOP_DB."""
    db = 20 * np.log10(np.maximum(envelope, 1e-12))
    on = np.flatnonzero(db >= db.max() + ON_DB)
    middle = on[len(on) // 4: max(len(on) // 4 + 1, 3 * len(on) // 4)]
    steady = float(np.median(db[middle]))
    return db, steady, int(np.flatnonzero(db >= steady + START_DB)[0]), int(np.flatnonzero(db >= steady + STOP_DB)[-1])


def envelope_features(envelope: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(onset_to_steady_db, early_decay_db_per_s) of a tone's envelope (start, stop and steady level as
    `envelope_marks` finds them): the mean envelope over ONSET_S from the start relative to the steady level, and
    the slope of a line through the envelope in dB from the stop until it has fallen DECAY_DB (at most 100 ms)."""
    db, steady, start, stop = envelope_marks(envelope)
    onset = float(np.mean(envelope[start:start + max(1, int(ONSET_S * sample_rate))]))
    tail = db[stop:stop + int(0.1 * sample_rate)] - steady
    fallen = np.flatnonzero(tail <= STOP_DB - DECAY_DB)
    tail = tail[:max(int(fallen[0]) if len(fallen) else len(tail), 2)]
    slope = np.polyfit(np.arange(len(tail)) / sample_rate, tail, 1)[0] if len(tail) >= 2 else 0.0
    return 20 * np.log10(max(onset, 1e-12)) - steady, float(slope)


def onset_view(envelope: np.ndarray, sample_rate: int) -> np.ndarray:
    """The envelope in dB relative to its steady level (clipped to VIEW_RANGE_DB) at each millisecond of VIEW_MS
    around the tone's start, then around its stop (`envelope_marks`); the envelope is a millisecond's average, so
    these points miss nothing between them."""
    db, steady, start, stop = envelope_marks(envelope)
    offsets = np.round(np.arange(*VIEW_MS) * sample_rate / 1000).astype(np.int64)
    at = np.clip(np.concatenate([start + offsets, stop + offsets]), 0, len(db) - 1)
    return np.clip(db[at] - steady, *VIEW_RANGE_DB)


def feature_matrix(paths: list[str], frequency: str | list[str], length: int | None,
                   sample_rate: int | None = None, view: bool = False) -> np.ndarray:
    """[n, len(FEATURES)] (with `view`, then each one's onset view: [n, len(FEATURES) + VIEW_POINTS]) for the
    recordings at `paths` of tone `frequency` (one for all, or each one's), resampled to `sample_rate` if given and
    cropped or padded to `length` samples if given (as a run does with recordings at another rate and with
    --duration)."""
    frequencies = [frequency] * len(paths) if isinstance(frequency, str) else frequency
    rows = []
    for path, tone in zip(paths, frequencies):
        samples, sample_rate = read_audio(path, sample_rate)
        rows.append(recording_features(samples if length is None else fit_length(samples, length), sample_rate,
                                       frequency_hz(tone), view))
    return np.array(rows).reshape(len(paths), len(FEATURES) + (VIEW_POINTS if view else 0))
