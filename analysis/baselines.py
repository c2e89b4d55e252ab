"""A run against the simple baselines: `python -m analysis.baselines RUN [--split val|test|all]`.

The run's checkpoint and the baselines (analysis/baseline_rankers.py, fitted on the run's training recordings) are
measured on the same recordings; baselines.json holds both, and the table is printed.
"""

import argparse
import sys
from pathlib import Path

from analysis.baseline_rankers import FIGURES
from analysis.checkpoint_eval import evaluate_checkpoint, prepare
from analysis.evaluation import comparison_lines
from analysis.report import plain_json
from config import DEVICES
from utils.errors import run_command
from utils.io_utils import output_folder, save_json


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a run folder (its newest checkpoint) or a model_epoch_<N>.pt")
    p.add_argument("--split", choices=["val", "test", "all"], default="val",
                   help="the recordings to compare on, as evaluate.py's --split (with all, the baselines are fitted "
                        "on the recordings they are measured on) (default: %(default)s)")
    p.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
    p.add_argument("--manifest", metavar="FILE.csv", help="the recordings' manifest (default: the checkpoint's)")
    p.add_argument("--out", help="where baselines.json goes (default: baselines_<split>/ beside the checkpoint)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    return p


def compare(args: argparse.Namespace) -> int:
    ready = prepare(args.checkpoint, args.split, args.data_root, device_name=args.device, manifest=args.manifest)
    out = output_folder(Path(args.out) if args.out else ready.path.parent / f"baselines_{args.split}")
    report = evaluate_checkpoint(ready, args.split)
    cnn = report.metrics
    save_json(plain_json({"checkpoint": str(ready.path), "split": args.split,
                          "cnn": {key: cnn[key] for key in FIGURES}, **report.versus,
                          "baselines": report.baselines}), out / "baselines.json")
    print(f"{ready.path} on {args.split} ({cnn['recordings']} recordings, {cnn['pairs']} pairs):")
    print("\n".join(comparison_lines({"CNN": cnn}, report.baselines)))
    print(f"wrote {out}/baselines.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(lambda: compare(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
