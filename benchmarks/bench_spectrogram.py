"""Spectrogram extraction per recording, ours (`torch.stft`) against the per-frame numpy definition, and
the whole dataset's load without a cache, into an empty `--cache-dir`, and from it.

Also times the complex STFT alone (no magnitude, no logarithm), the floor under any implementation.

    python benchmarks/bench_spectrogram.py [--recordings 10]

Uses the cached 6 s, 48 kHz recordings of bench_train.py (generated if missing).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import config  # noqa: E402
from bench_train import CACHE, ensure_data  # noqa: E402
from audio_data import SpectrogramDatasetWithMaterial  # noqa: E402
from audio_data.audio import read_audio  # noqa: E402
from audio_data.spectrogram import spectrogram_db  # noqa: E402


def numpy_per_frame(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The reference definition, one rfft per frame."""
    y_pad = np.pad(y.astype(np.float64), n_fft // 2, mode="reflect")
    window = np.hamming(n_fft)
    frames = 1 + (len(y_pad) - n_fft) // hop
    magnitude = np.stack([np.abs(np.fft.rfft(y_pad[i * hop:i * hop + n_fft] * window)) for i in range(frames)],
                         axis=1)
    return 20 * np.log10(np.maximum(magnitude, 1e-10) / max(1e-10, magnitude.max()))


def fft_only(y: np.ndarray, n_fft: int, hop: int, dtype: torch.dtype) -> torch.Tensor:
    """The complex STFT alone, without magnitude or logarithm: what any implementation has to pay."""
    window = torch.hamming_window(n_fft, periodic=False, dtype=dtype)
    return torch.stft(torch.as_tensor(y).to(dtype), n_fft, hop, window=window, center=True, pad_mode="reflect",
                      return_complex=True)


def seconds(f, *args) -> float:
    start = time.perf_counter()
    f(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=10)
    args = parser.parse_args()
    paths = sorted(ensure_data().rglob("*.wav"))[:args.recordings]
    audio = [read_audio(p)[0] for p in paths]
    ours = [seconds(spectrogram_db, y, config.N_FFT, config.HOP_LENGTH) for y in audio]
    reference = [seconds(numpy_per_frame, y, config.N_FFT, config.HOP_LENGTH) for y in audio]
    decode = [seconds(read_audio, p) for p in paths]
    fft64, fft32 = ([seconds(fft_only, y, config.N_FFT, config.HOP_LENGTH, dtype) for y in audio]
                    for dtype in (torch.float64, torch.float32))
    print(f"{len(paths)} recordings of {len(audio[0]) / 48000:.0f} s at 48 kHz, n_fft {config.N_FFT}, "
          f"hop {config.HOP_LENGTH}; median (min–max) ms per recording")
    for name, values in (("decode (soundfile)", decode), ("spectrogram, ours (torch.stft)", ours),
                         ("spectrogram, per-frame numpy loop", reference), ("FFT alone, float64", fft64),
                         ("FFT alone, float32", fft32)):
        ms = [1000 * v for v in values]
        print(f"{name:<36}{statistics.median(ms):8.1f} ({min(ms):.1f}–{max(ms):.1f})")
    loop = statistics.median(reference)
    print(f"speed-up over the per-frame loop: {loop / statistics.median(ours):.1f}x; the FFT alone bounds any "
          f"implementation at {loop / statistics.median(fft64):.1f}x (float64), "
          f"{loop / statistics.median(fft32):.1f}x (float32)")
    with tempfile.TemporaryDirectory() as cache:
        loads = [(name, seconds(load_dataset, cache_dir)) for name, cache_dir in
                 (("no cache", None), ("empty cache (fills it)", cache), ("from the cache", cache))]
    print(f"whole dataset ({len(list(CACHE.rglob('*.wav')))} recordings) load, seconds: "
          + ", ".join(f"{name} {value:.2f}" for name, value in loads))
    print(f"cached load speed-up over the uncached one: {loads[0][1] / loads[2][1]:.1f}x")


def load_dataset(cache_dir: str | None) -> SpectrogramDatasetWithMaterial:
    return SpectrogramDatasetWithMaterial(CACHE, config.CLASSES, None, "1000hz", "plastic", cache_dir=cache_dir)


if __name__ == "__main__":
    main()
