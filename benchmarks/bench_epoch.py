"""Whole-run benchmark: `train.py` runs of several epochs against plain epochs measured in the same run.

    python benchmarks/bench_epoch.py [--epochs 5] [--variants default,unique] [--plain-steps 3] [--device cuda]

On bench_train.py's 54 recordings of 6 s (1025 × 1126 spectrograms, 1000 Hz), each variant is one
`train.py --epochs N --profile` process with default options (`unique` adds --pair-forward unique,
`data_on_device` --data-on-device, for a GPU): its wall
time from start to exit (imports, loading, every epoch's steps, validation and files, the final evaluation),
its peak RSS, and its own --profile line. The plain run is measured in a process of its own: loading the
recordings, `--plain-steps` plain training steps (bench_train.py's `plain_step`, after one warm-up step) and
two plain validation batches (model(x1), model(x2) through the plain modules in eval mode); a plain run of
N epochs = loading + N · (training batches · step + validation batches · validation batch). With `--device
cuda` both run on the GPU, the plain run with ordinary (pageable) batches and a device synchronisation before each
clock reading.
Reported: seconds per epoch (the whole run's time / N) and the plain run's time per epoch over each variant's.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_train import CACHE, device_sync, ensure_data, plain_loader, plain_step

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"default": [], "unique": ["--pair-forward", "unique"], "data_on_device": ["--data-on-device"]}


def plain_worker(steps: int, device_name: str) -> dict:
    import torch
    from torch import nn
    from torch.utils.data import default_collate

    from models.common import standardize
    from training.cli import parse_args
    from training.loop import build_training, run_data

    cfg = parse_args(["--frequency", "1000hz", "--data-root", str(CACHE)])
    device = torch.device(device_name)
    sync = device_sync(device)
    torch.manual_seed(cfg.run.seed)
    start = time.perf_counter()
    data = run_data(cfg)
    loading = time.perf_counter() - start
    t = build_training(cfg, device)
    t.model.to(memory_format=torch.contiguous_format).train()
    criterion = nn.MarginRankingLoss(margin=cfg.loss.margin)
    batches, step_times = iter(plain_loader(data, cfg.run.seed)), []
    for n in range(steps + 1):
        batch = next(batches)
        start = time.perf_counter()
        plain_step(t.model, t.optimizer, criterion, batch, device)
        sync()
        step_times.append(time.perf_counter() - start)
    t.model.eval()
    val_times = []
    with torch.no_grad():
        size = data.val_loader.batch_size
        for batch in (default_collate([data.val_pairs[i] for i in range(k * size, (k + 1) * size)]) for k in range(2)):
            start = time.perf_counter()
            for x in batch[:2]:
                t.model.head(t.model.features(standardize(x.to(device))))
            sync()
            val_times.append(time.perf_counter() - start)
    return {"loading": loading, "step": statistics.median(step_times[1:]), "val_batch": statistics.median(val_times),
            "train_batches": len(data.train_loader), "val_batches": len(data.val_loader)}


def run_train(flags: list[str], epochs: int, device: str) -> dict:
    """Wall time, peak RSS and --profile line of one train.py process."""
    with tempfile.TemporaryDirectory() as save_dir:
        argv = [sys.executable, str(ROOT / "train.py"), "--data-root", str(CACHE), "--frequency", "1000hz",
                "--epochs", str(epochs), "--profile", "--no-progress", "--save-dir", save_dir, "--device", device,
                *flags]
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"train.py {' '.join(flags)} failed:\n{output}")
    profile = next(line for line in output.splitlines() if line.startswith("profile of "))
    steps = float(re.search(r"training steps ([\d.]+) s", profile).group(1))
    return {"wall": wall, "peak_rss_gb": usage.ru_maxrss / 1e6, "profile": profile, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--variants", default="default,unique")
    parser.add_argument("--plain-steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--plain-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        print(json.dumps(plain_worker(args.plain_steps, args.device)))
        return
    ensure_data()
    out = subprocess.run([sys.executable, __file__, "--plain-worker", "--plain-steps", str(args.plain_steps),
                          "--device", args.device], capture_output=True, text=True, check=True)
    plain = json.loads(out.stdout.strip().splitlines()[-1])
    plain_epoch = (plain["loading"] / args.epochs + plain["train_batches"] * plain["step"]
                   + plain["val_batches"] * plain["val_batch"])
    print(f"plain: loading {plain['loading']:.1f} s, step {plain['step']:.2f} s, validation batch "
          f"{plain['val_batch']:.2f} s; {plain['train_batches']} training and {plain['val_batches']} validation "
          f"batches per epoch: {plain_epoch:.1f} s per epoch", flush=True)
    for name in args.variants.split(","):
        r = run_train(VARIANTS[name], args.epochs, args.device)
        epoch = r["wall"] / args.epochs
        print(f"{name}: {r['wall']:.1f} s for {args.epochs} epochs ({epoch:.1f} s per epoch), peak RSS "
              f"{r['peak_rss_gb']:.2f} GB; outside the training steps {1 - r['steps'] / r['wall']:.1%} of the "
              f"run's wall time; plain / {name} epoch time {plain_epoch / epoch:.2f}x\n  {r['profile']}", flush=True)


if __name__ == "__main__":
    main()
