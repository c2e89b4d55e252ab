"""The simple baselines alone, over K folds of each subset (material × frequency) of a dataset: the evidence of how
high the bar stands that a learned ranker must clear (docs/evidence.md).

    python scripts/baseline_folds.py DATA_ROOT [--folds 5] [--seeds 1 2 3] [--duration S] [--training-split]

For each subset and seed: the recordings' features (audio_data/tone_features.py), the K grouped, stratified folds a
`train.py --folds K --seed S` run uses (audio_data/loading.py), and per fold every baseline fitted on the other folds
(with --training-split: on the run's own training split, as its final evaluation fits them) and measured on the
fold (all-pairs accuracy). Prints each ranker's mean over folds and seeds, the best baseline chosen after the fact
per fold (as the program does), the same without the envelope features (the four features of before), so that
their share of the bar shows, and the best single ranker's mean (one choice per subset, as a folds summary's
best_baseline_over_folds).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import config  # noqa: E402
from analysis.baseline_rankers import baseline_report  # noqa: E402
from analysis.ranking_metrics import ranking_metrics  # noqa: E402
from audio_data.loading import load_recordings, split_recordings  # noqa: E402
from audio_data.tone_features import FEATURES  # noqa: E402
from models.linear_ranker import fit_logistic, standardised_pairs  # noqa: E402

BEFORE = FEATURES[:4]  # the features before the envelope's


def before_best(x: np.ndarray, labels: np.ndarray, train: list[int], test: list[int], classes: list[str],
                report: dict) -> float:
    """The best baseline's test accuracy among the rankers of BEFORE alone (their logistic ranker refitted)."""
    before = x[:, :len(BEFORE)]
    mean, std, d, y = standardised_pairs(before[train], labels[train])
    scores = ((before - mean) / std) @ fit_logistic(d, y)
    logistic = ranking_metrics(scores[test], labels[test], classes)["pairwise_accuracy"]
    singles = [report["rankers"][name]["pairwise_accuracy"] for name in BEFORE if name in report["rankers"]]
    return max([logistic, *singles])


def subset_figures(root: str, material: str, frequency: str, folds: int, seeds: list[int], duration: float | None,
                   training_split: bool) -> dict[str, float]:
    data = config.DataConfig(root=root, material=material, frequency=frequency, seqs="all", duration=duration)
    recordings = load_recordings(data)
    labels = recordings.labels.numpy()
    x = recordings.physical_features()
    figures: dict[str, list[float]] = {}
    for seed in seeds:
        for k in range(1, folds + 1):
            split = split_recordings(recordings, seed, fold=(k, folds))  # a --folds run's own
            test = split.test
            train = split.train if training_split else sorted(set(range(len(labels))) - set(test))
            report = baseline_report(x, labels, train, test, recordings.classes)
            for name, ranker in report["rankers"].items():
                figures.setdefault(name, []).append(ranker["pairwise_accuracy"])
            figures.setdefault("best", []).append(report["rankers"][report["best"]]["pairwise_accuracy"])
            figures.setdefault("best without envelope", []).append(
                before_best(x, labels, train, test, recordings.classes, report))
    means = {name: float(np.mean(values)) for name, values in figures.items()}
    singles = [value for name, value in means.items() if not name.startswith("best")]
    return {**means, "best over folds": max(singles)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--duration", type=float, help="crop or pad the recordings as train.py --duration does")
    parser.add_argument("--training-split", action="store_true",
                        help="fit on each fold's training split (as a run does) instead of on the other folds")
    args = parser.parse_args()
    rows = {}
    for material in config.MATERIALS:
        for frequency in config.FREQUENCIES:
            rows[f"{material} {frequency}"] = subset_figures(args.data_root, material, frequency, args.folds,
                                                             args.seeds, args.duration, args.training_split)
    names = list(next(iter(rows.values())))
    print("subset          " + "  ".join(f"{name[:22]:>22}" for name in names))
    for subset, figures in rows.items():
        print(f"{subset:<16}" + "  ".join(f"{figures[name]:>22.3f}" for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
