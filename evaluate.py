"""How well does a trained ranker order the angles? Exact ranking measures over all pairs of recordings.

    python evaluate.py --checkpoint saved_models/model_checkpoints/<run>/model_epoch_30.pt
    python evaluate.py --checkpoint <ckpt> --split all --data-root other_data --out eval_other
"""

import argparse
import sys
import warnings
from pathlib import Path

from analysis.checkpoint_eval import evaluate_checkpoint, prepare
from analysis.evaluation import comparison_lines, estimate_headline, headline
from analysis.report import write_report
from config import DEVICES, MODEL_NAMES
from utils.errors import run_command
from utils.io_utils import output_folder
from utils.run_paths import evaluation_folder


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a ranker checkpoint on recordings.")
    p.add_argument("--checkpoint", required=True,
                   help="a model_epoch_<N>.pt written by train.py, or a run folder (its newest checkpoint)")
    p.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
    p.add_argument("--manifest", metavar="FILE.csv", help="the recordings' manifest (default: the checkpoint's)")
    p.add_argument("--frequency", help="<N>hz (default: the checkpoint's)")
    p.add_argument("--material", help="one, or several separated by commas (default: the checkpoint's)")
    p.add_argument("--model", choices=MODEL_NAMES, help="(default: the checkpoint's)")
    p.add_argument("--split", choices=["val", "test", "all"], default="val",
                   help="val: the run's validation recordings, rebuilt from its seed; test: its held-out test "
                        "recordings (a run with --test-fraction); all: every recording found (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: eval_<checkpoint name>_<split>/ beside the checkpoint; "
                                 "the run's own final evaluation in eval/ is replaced only when --out names it)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    return p


def evaluate(args: argparse.Namespace) -> int:
    ready = prepare(args.checkpoint, args.split, args.data_root, args.frequency, args.material, args.model,
                    args.device, args.manifest)
    out = output_folder(Path(args.out) if args.out else evaluation_folder(ready.path, args.split))
    report = evaluate_checkpoint(ready, args.split)
    write_report(report, out)
    print(f"{ready.path} on {args.split}: {headline(report.metrics)}; {estimate_headline(report.estimates)}")
    for material, figures in report.metrics.get("per_material", {}).items():
        print(f"  {material}: {headline(figures)}; {estimate_headline(report.estimates['per_material'][material])}")
    print("\n".join(comparison_lines({"CNN": report.metrics}, report.baselines)))
    print(f"wrote {out}/metrics.json, scores.csv, scores_by_class.png, pair_accuracy.png, confusion.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
    args = get_args_parser().parse_args(argv)
    return run_command(lambda: evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
