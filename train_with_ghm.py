"""Deprecated: the old GHM training script. Use `python train.py --loss-type ghm ...` instead.

Running it trains exactly as `train.py --loss-type ghm` with the flags given here.
"""

import argparse
import sys

import config
import train
from training.loop import run_data
from utils.debugging_utils import first_batches, record_differences

NOTICE = "train_with_ghm.py is deprecated; use: python train.py --loss-type ghm [flags]"


def requested_loss(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--loss-type", default="ghm")
    return parser.parse_known_args(argv)[0].loss_type


def ghm_argv(argv: list[str]) -> list[str]:
    return ["--loss-type", "ghm", *argv]


def check_batch_consistency(argv: list[str] | None = None, batches: int = 3) -> bool:
    """Build the training loader twice with the same seed; report whether the first batches are identical."""
    cfg = train.parse_args(ghm_argv(sys.argv[1:] if argv is None else argv))
    if cfg.data.frequency == "all":
        cfg = cfg.with_values(frequency=config.FREQUENCIES[0])
    records = [first_batches(run_data(cfg).train_loader, batches) for _ in range(2)]
    differences = record_differences(*records)
    if differences:
        print(f"batch consistency (seed {cfg.run.seed}): NOT identical: " + "; ".join(differences))
    else:
        print(f"batch consistency (seed {cfg.run.seed}): first {len(records[0])} batches identical")
    return not differences


def main(argv: list[str] | None = None) -> int:
    print(f"warning: {NOTICE}", file=sys.stderr)
    argv = sys.argv[1:] if argv is None else argv
    if requested_loss(argv) != "ghm":
        print("error: train_with_ghm.py always trains with GHM; use train.py for --loss-type standard",
              file=sys.stderr)
        return 2
    return train.main(ghm_argv(argv))


if __name__ == "__main__":
    sys.exit(main())
