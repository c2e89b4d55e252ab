"""How well does a trained ranker order the angles? Exact ranking measures over all pairs of recordings.

    python evaluate.py --checkpoint saved_models/model_checkpoints/<run>/model_epoch_30.pt
    python evaluate.py --checkpoint <ckpt> --split all --data-root other_data --out eval_other
"""

import argparse
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from audio_data import SpectrogramDatasetWithMaterial
from audio_data.loading import load_recordings, run_split
from config import DEVICES, MODEL_NAMES, DataConfig, RunConfig
from models import check_input_size, checkpoint_model
from utils.checkpoints import checkpoint_run
from utils.common_utils import choose_device
from utils.errors import InputError
from analysis.baselines import comparison_lines, run_baselines, versus
from analysis.evaluation import estimate_headline, evaluate_recordings, headline, write_evaluation
from analysis.run_calibration import checkpoint_calibration
from utils.run_paths import evaluation_folder


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a ranker checkpoint on recordings.")
    p.add_argument("--checkpoint", required=True,
                   help="a model_epoch_<N>.pt written by train.py, or a run folder (its newest checkpoint)")
    p.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
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


def select_recordings(recordings: SpectrogramDatasetWithMaterial, cfg: RunConfig, checkpoint: dict,
                      split: str) -> tuple[list[int], list[int]]:
    """(training, evaluated) indices: with split all every recording for both; else the run's training split and
    its validation or test split, checked against the validation paths the checkpoint recorded (the test split
    comes from the same seed and recordings)."""
    if split == "all":
        return list(range(len(recordings))), list(range(len(recordings)))
    splits = run_split(recordings, cfg.data, cfg.run.seed)
    if split == "test" and not splits.test:
        raise InputError("--split test: the run held out no test split (it trained without --test-fraction)")
    expected = checkpoint.get("val_recordings")
    if expected is not None and [recordings.paths[i] for i in splits.val] != list(expected):
        raise InputError("the validation recordings rebuilt from the checkpoint's seed are not the ones the run "
                         "used (the data folder changed?); use --split all")
    return splits.train, splits.test if split == "test" else splits.val


@dataclass
class Prepared:
    """A checkpoint's model on its device and the recordings to evaluate it on; `data` is the run's data settings
    with those given on the command line."""
    path: Path
    checkpoint: dict
    cfg: RunConfig
    data: DataConfig
    device: torch.device
    model: nn.Module
    recordings: SpectrogramDatasetWithMaterial
    train: list[int]
    evaluated: list[int]


def prepare(checkpoint_arg: str, split: str, data_root: str | None = None, frequency: str | None = None,
            material: str | None = None, model_name: str | None = None, device_name: str = "auto") -> Prepared:
    """Load a checkpoint (or a run folder's newest) and the recordings of `split`; InputError when they do not fit."""
    path, checkpoint, cfg = checkpoint_run(checkpoint_arg)
    device = choose_device(device_name)
    model_name = model_name or cfg.model.name
    model = checkpoint_model(checkpoint, model_name, path, device)
    overrides = {key: value for key, value in (("root", data_root), ("material", material),
                                               ("frequency", frequency)) if value}
    data = replace(cfg.data, **overrides)
    recordings = load_recordings(data)
    check_input_size(model_name, tuple(recordings.data.shape[1:]))
    train, evaluated = select_recordings(recordings, cfg, checkpoint, split)
    return Prepared(path, checkpoint, cfg, data, device, model, recordings, train, evaluated)


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
    args = get_args_parser().parse_args(argv)
    try:
        ready = prepare(args.checkpoint, args.split, args.data_root, args.frequency, args.material, args.model,
                        args.device)
        path, recordings, indices = ready.path, ready.recordings, ready.evaluated
        calibration = checkpoint_calibration(ready.checkpoint, ready.cfg, ready.model, ready.device,
                                             f"--checkpoint {path}")
        baselines = run_baselines(recordings, ready.train, indices, ready.data)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    labels = recordings.labels[indices].numpy()
    materials = [recordings.materials[i] for i in indices]
    scores, metrics = evaluate_recordings(ready.model, recordings.data[indices], labels, recordings.classes,
                                          ready.device, materials=materials)
    out = Path(args.out) if args.out else evaluation_folder(path, args.split)
    extra = {"checkpoint": str(path), "epoch": ready.checkpoint.get("epoch"), "split": args.split,
             **versus(metrics, baselines), "baselines": baselines}
    estimates = write_evaluation(out, [recordings.paths[i] for i in indices], labels, scores, metrics,
                                 recordings.classes, f"{path.parent.name} ({args.split})", extra, materials,
                                 calibration)
    print(f"{path} on {args.split}: {headline(metrics)}; {estimate_headline(estimates)}")
    for material, figures in metrics.get("per_material", {}).items():
        print(f"  {material}: {headline(figures)}; {estimate_headline(estimates['per_material'][material])}")
    print("\n".join(comparison_lines({"CNN": metrics}, baselines)))
    print(f"wrote {out}/metrics.json, scores.csv, scores_by_class.png, pair_accuracy.png, confusion.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
