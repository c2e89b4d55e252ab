from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_wav

from audio_data.audio import read_audio
from audio_data.spectrogram import spectrogram_db
from audio_data.spectrogram_cache import content_key
from utils.errors import InputError


def ramp(n: int = 400) -> np.ndarray:
    return np.linspace(-0.9, 0.9, n)


@pytest.mark.parametrize("subtype, tolerance", [("PCM_U8", 1 / 128), ("PCM_16", 1 / 2**15),
                                                ("PCM_24", 1 / 2**23), ("PCM_32", 1 / 2**31),
                                                ("FLOAT", 1e-7)])
def test_every_pcm_width_and_float_reads_to_the_same_scale(tmp_path, subtype, tolerance):
    path = write_wav(tmp_path / f"{subtype}.wav", ramp(), subtype=subtype)
    samples, rate = read_audio(path)
    assert rate == 8000 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, ramp(), atol=tolerance * 1.01 + 1e-7)


def test_unsigned_8_bit_is_not_read_as_signed(tmp_path):
    path = write_wav(tmp_path / "u8.wav", np.full(100, 0.5), subtype="PCM_U8")
    samples, _ = read_audio(path)
    assert np.all(np.abs(samples - 0.5) < 0.01)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = ramp(), np.full(400, 0.25)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    samples, _ = read_audio(path)
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1e-6)


def test_unreadable_and_empty_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(InputError, match="garbage.wav"):
        read_audio(garbage)
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(InputError, match="empty.wav: the recording has no samples"):
        read_audio(empty)


def numpy_spectrogram_db(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The reference definition, frame by frame."""
    y_pad = np.pad(y.astype(np.float64), n_fft // 2, mode="reflect")
    window = np.hamming(n_fft)
    frames = 1 + (len(y_pad) - n_fft) // hop
    magnitude = np.stack([np.abs(np.fft.rfft(y_pad[i * hop:i * hop + n_fft] * window))
                          for i in range(frames)], axis=1)
    return 20 * np.log10(np.maximum(magnitude, 1e-10) / max(1e-10, magnitude.max()))


@pytest.mark.parametrize("n_fft, hop, length", [(2048, 256, 8000), (256, 64, 3001), (128, 32, 65)])
def test_spectrogram_matches_the_numpy_definition(n_fft, hop, length):
    rng = np.random.default_rng(0)
    t = np.arange(length) / 8000
    y = (0.5 * np.sin(2 * np.pi * 1000 * t) + 1e-3 * rng.standard_normal(length)).astype(np.float32)
    ours = spectrogram_db(y, n_fft, hop)
    reference = numpy_spectrogram_db(y, n_fft, hop)
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == (1, n_fft // 2 + 1, reference.shape[1])
    assert np.max(np.abs(ours[0].numpy() - reference)) < 1e-3
    assert ours.max() == 0.0


def test_silence_gives_the_floor_not_nan():
    out = spectrogram_db(np.zeros(1000, dtype=np.float32), 128, 32)
    assert torch.all(out == 0.0)


def test_full_scale_reference_keeps_the_level():
    """0 dB is a full-scale sine at a bin's centre; the peak reference is the same spectrogram less its maximum."""
    rate, n_fft = 8000, 256
    t = np.arange(4000) / rate
    for amplitude in (1.0, 0.1):
        samples = amplitude * np.sin(2 * np.pi * (rate / n_fft * 32) * t)
        full = spectrogram_db(samples, n_fft, 64, "full-scale")
        assert float(full.max()) == pytest.approx(20 * np.log10(amplitude), abs=0.05)
        torch.testing.assert_close(spectrogram_db(samples, n_fft, 64), full - full.max(), rtol=0, atol=1e-4)
    key = content_key(Path(__file__), n_fft, 64, 4000, False)
    assert content_key(Path(__file__), n_fft, 64, 4000, False, "full-scale") != key
