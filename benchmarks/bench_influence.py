"""Influence (analysis/influence.py) against training: seconds per checkpoint next to seconds per training epoch.

    python benchmarks/bench_influence.py [--epochs 2] [--frequency 1000hz] [--save-dir DIR]

Trains the demo run (`train.py --demo`, default settings, a checkpoint every epoch) for `--epochs` epochs,
then times `python -m analysis.influence` on it. The influence cost is linear in the number of checkpoints,
so the ratio per checkpoint is the figure for a 30-epoch run checkpointed every epoch too (30 checkpoints,
30 epochs); the goal is a ratio of at most 1. Prints the epoch times (from metrics.csv), the influence time per
checkpoint and the ratio.
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--frequency", default="1000hz")
    parser.add_argument("--save-dir", help="(default: a temporary folder)")
    args = parser.parse_args()
    save_dir = Path(args.save_dir or tempfile.mkdtemp(prefix="bench_influence_"))
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--demo", "--frequency", args.frequency, "--epochs",
                    str(args.epochs), "--checkpoint-interval", "1", "--no-progress", "--save-dir", str(save_dir),
                    "--run-name", "bench"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    run = save_dir / "model_checkpoints" / "bench"
    with open(run / "metrics.csv") as f:
        epochs = [float(row["seconds"]) for row in csv.DictReader(f)]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "analysis.influence", str(run)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    per_checkpoint = (time.perf_counter() - started) / len(epochs)
    epoch = sum(epochs) / len(epochs)
    print(f"training epochs: {', '.join(f'{s:.1f}' for s in epochs)} s (mean {epoch:.1f} s)")
    print(f"influence: {per_checkpoint:.1f} s per checkpoint ({len(epochs)} checkpoints, start-up included)")
    print(f"ratio influence per checkpoint / training epoch: {per_checkpoint / epoch:.2f} (goal <= 1)")


if __name__ == "__main__":
    main()
