"""Reading WAV recordings as mono float samples."""

from pathlib import Path

import numpy as np
import soundfile as sf

from utils.errors import InputError


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (mono float32 samples in [-1, 1], sample rate); stereo channels are averaged.

    soundfile decodes every PCM width (unsigned 8-bit included) and float WAVs to the same scale.
    """
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, OSError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    if samples.shape[0] == 0:
        raise InputError(f"{path}: the recording has no samples")
    return samples.mean(axis=1), sample_rate


def wav_info(path: str | Path) -> tuple[int, int]:
    """(number of samples, sample rate) from the file's header, without decoding it."""
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, OSError) as exc:
        raise InputError(f"{path}: cannot read audio ({exc})") from None
    if info.frames == 0:
        raise InputError(f"{path}: the recording has no samples")
    return info.frames, info.samplerate
