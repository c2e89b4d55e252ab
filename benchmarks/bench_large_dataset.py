"""A dataset larger than memory: peak RSS of training on the memory-mapped --cache-dir, next to the data size.

    python benchmarks/bench_large_dataset.py [--fraction 0.55] [--steps 200] [--data DIR]

Writes (once) enough 6 s, 48 kHz recordings in six classes that their spectrograms (1025 × 1126 float32,
4.6 MB each) exceed `--fraction` of this machine's memory, builds the cache in one process, then trains
`--steps` steps of the trainer (default settings, GHM loss) on it in a fresh process and reports that
process's peak RSS. (`--pair-forward unique` gains nothing here: with thousands of recordings nearly every
recording of a batch is distinct.)
The recordings are tones and noise made with numpy (cheap to write in thousands); the demo generator's
realism does not matter for memory.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE, SECONDS, CLASSES = 48000, 6.0, 6
SPECTROGRAM_BYTES = 1025 * (1 + int(RATE * SECONDS) // 256) * 4


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def write_recordings(data: Path, count: int) -> None:
    """`count` recordings spread over six classes; the level of the tone falls with the class."""
    import numpy as np
    import soundfile as sf

    import config

    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * SECONDS)) / RATE
    for i in range(count):
        label = i % CLASSES
        name = config.CLASSES[label]
        path = data / name / "plastic" / f"plastic_{name}_1000hz_{i // CLASSES:04d}.wav"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        signal = (0.5 - 0.07 * label) * np.sin(2 * np.pi * 1000 * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(str(path), signal.astype(np.float32), RATE, subtype="PCM_16")


def train_args(data: Path, cache: Path, batch_size: int) -> list[str]:
    return ["--frequency", "1000hz", "--data-root", str(data), "--seqs", "all", "--cache-dir", str(cache),
            "--batch-size", str(batch_size), "--loss-type", "ghm"]


def build_cache(data: Path, cache: Path) -> dict:
    from audio_data.loading import load_recordings
    from training.cli import parse_args

    started = time.perf_counter()
    recordings = load_recordings(parse_args(train_args(data, cache, 32)).data)
    return {"recordings": len(recordings), "seconds": time.perf_counter() - started,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def train_steps(data: Path, cache: Path, steps: int, batch_size: int) -> dict:
    """The trainer's own loader, model, GHM loss and step, for `steps` batches."""
    import torch

    from training.cli import parse_args
    from training.loop import build_training, run_data, train_step
    from utils.memory import retain_freed_memory

    retain_freed_memory()
    cfg = parse_args(train_args(data, cache, batch_size))
    torch.manual_seed(cfg.run.seed)
    opening = time.perf_counter()
    loader = run_data(cfg).train_loader  # hashes every recording and checks every entry once
    opened = time.perf_counter() - opening
    t = build_training(cfg, torch.device("cpu"))
    t.model.train()
    started, done = time.perf_counter(), 0
    while done < steps:
        for batch in loader:
            train_step(t, batch, torch.device("cpu"))
            done += 1
            if done == steps:
                break
    return {"steps": steps, "seconds_per_step": (time.perf_counter() - started) / steps, "open_seconds": opened,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def in_subprocess(phase: str, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--data", str(args.data), "--steps",
                          str(args.steps), "--batch-size", str(args.batch_size)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.55, help="dataset size / machine memory")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / ".cache" / "large")
    parser.add_argument("--phase", choices=["cache", "train"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    audio, cache = args.data / "audio", args.data / "spectrograms"
    if args.phase:
        result = build_cache(audio, cache) if args.phase == "cache" else train_steps(audio, cache, args.steps,
                                                                                    args.batch_size)
        print(json.dumps(result))
        return
    count = CLASSES * math.ceil(args.fraction * memory_bytes() / SPECTROGRAM_BYTES / CLASSES)
    print(f"machine memory {memory_bytes() / 1e9:.1f} GB; {count} recordings of {SECONDS:g} s, spectrograms "
          f"{count * SPECTROGRAM_BYTES / 1e9:.1f} GB", flush=True)
    started = time.perf_counter()
    write_recordings(audio, count)
    print(f"recordings written in {time.perf_counter() - started:.0f} s", flush=True)
    built = in_subprocess("cache", args)
    size = sum(p.stat().st_size for p in cache.glob("*.npy"))
    print(f"cache of {built['recordings']} spectrograms, {size / 1e9:.1f} GB on disk, built in "
          f"{built['seconds']:.0f} s; that process's peak RSS {built['peak_rss_gb']:.2f} GB", flush=True)
    trained = in_subprocess("train", args)
    print(f"opening the cache (hash each recording, check each entry once): {trained['open_seconds']:.0f} s",
          flush=True)
    print(f"training: {trained['steps']} steps of {args.batch_size} pairs (default settings, GHM), "
          f"{trained['seconds_per_step']:.2f} s per step; peak RSS {trained['peak_rss_gb']:.2f} GB = "
          f"{trained['peak_rss_gb'] * 1e9 / size:.0%} of the dataset's {size / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
