"""Reading recordings, in every format libsndfile reads, as mono float samples at a run's sample rate."""

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from utils.errors import InputError

# The file name endings taken as recordings, in any case: what libsndfile reads by the name's ending (raw PCM and
# MATLAB files, which need more than their name to be read as audio, are left out).
AUDIO_SUFFIXES = frozenset((".wav", ".wave", ".bwf", ".rf64", ".w64", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                            ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".sph", ".nist", ".voc", ".htk",
                            ".sd2", ".ircam", ".paf", ".pvf", ".xi", ".avr", ".svx", ".wve"))
RESAMPLE_QUALITY = "HQ"  # soxr's 20-bit quality: well below the noise of a 16-bit recording


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def _check_name(path: str | Path) -> None:
    """A name that is not UTF-8 could be neither printed nor stored in our files: it is a bad recording."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise InputError(f"{shown}: the file name is not valid UTF-8 (rename the file)") from None


def resampled_length(frames: int, rate: int, target: int) -> int:
    """How many samples `frames` at `rate` become at `target` (soxr's rounding: to the nearest, halves up)."""
    return frames if rate == target else (2 * frames * target + rate) // (2 * rate)


def length_slack(rate: int, target: int) -> int:
    """How many samples a recording at `rate` may differ from a length at `target` and still be as long: a
    duration known to 1/rate s is known to target/rate samples (rounded up) at `target`; 0 without resampling."""
    return 0 if rate == target else -(-target // rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`samples` at `rate` resampled to `target` by soxr (band-limited, linear phase), float32."""
    import soxr

    return soxr.resample(samples, rate, target, quality=RESAMPLE_QUALITY)


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Return (mono float32 samples in [-1, 1], sample rate); stereo channels are averaged. With `sample_rate`, a
    recording at another rate is resampled to it.

    soundfile decodes every PCM width (unsigned 8-bit included), float and compressed formats to the same scale.
    """
    _check_name(path)
    try:
        with sf.SoundFile(str(path)) as f:
            samples, rate = f.read(dtype="float32", always_2d=True), f.samplerate
    except (sf.SoundFileError, OSError, RuntimeError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    if samples.shape[0] == 0:
        raise InputError(f"{path}: the recording has no samples")
    samples = samples.mean(axis=1)
    if sample_rate is not None and rate != sample_rate:
        return resample(samples, rate, sample_rate), sample_rate
    return samples, rate


def audio_info(path: str | Path) -> tuple[int, int]:
    """(number of samples, sample rate) from the file's header, without decoding it."""
    _check_name(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, OSError, RuntimeError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    if info.frames <= 0:
        raise InputError(f"{path}: the recording has no samples")
    return info.frames, info.samplerate


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Crop to `length` samples, or zero-pad at the end."""
    return samples[:length] if len(samples) >= length else np.pad(samples, (0, length - len(samples)))
