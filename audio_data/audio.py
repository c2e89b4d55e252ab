"""Reading WAV recordings as mono float samples."""

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from utils.errors import InputError

WAV_FORMATS = ("WAV", "WAVEX", "RF64")


def _check_name(path: str | Path) -> None:
    """A name that is not UTF-8 could be neither printed nor stored in our files: it is a bad recording."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise InputError(f"{shown}: the file name is not valid UTF-8 (rename the file)") from None


def _check_wav(path: str | Path, audio_format: str) -> None:
    if audio_format not in WAV_FORMATS:
        raise InputError(f"{path}: cannot read audio (a {audio_format} file, not a WAV)")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (mono float32 samples in [-1, 1], sample rate); stereo channels are averaged.

    soundfile decodes every PCM width (unsigned 8-bit included) and float WAVs to the same scale.
    """
    _check_name(path)
    try:
        with sf.SoundFile(str(path)) as f:
            _check_wav(path, f.format)
            samples, sample_rate = f.read(dtype="float32", always_2d=True), f.samplerate
    except (sf.SoundFileError, OSError, RuntimeError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    if samples.shape[0] == 0:
        raise InputError(f"{path}: the recording has no samples")
    return samples.mean(axis=1), sample_rate


def wav_info(path: str | Path) -> tuple[int, int]:
    """(number of samples, sample rate) from the file's header, without decoding it."""
    _check_name(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, OSError, RuntimeError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    _check_wav(path, info.format)
    if info.frames == 0:
        raise InputError(f"{path}: the recording has no samples")
    return info.frames, info.samplerate


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Crop to `length` samples, or zero-pad at the end."""
    return samples[:length] if len(samples) >= length else np.pad(samples, (0, length - len(samples)))
