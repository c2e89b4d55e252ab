"""Simple rankers beside the CNN (`python -m analysis.baselines RUN` compares a run with them).

Each recording gets the physical features of audio_data/tone_features.py (levels, noise floor, onset-to-steady
ratio, early decay, onset rise). The rankers are fitted on the run's training recordings: each number alone (its
sign chosen by the training pairs; broadband level only in the logistic ranker), and a pairwise logistic ranker on
all of them (standardised; models/linear_ranker.py), which scores a recording by w·x. Both are fitted on every
training pair of different classes (a seeded sample of MAX_PAIRS where there are more). Each is measured like the
CNN, over all pairs of the evaluation recordings. The best baseline is the one with the highest all-pairs accuracy
on those same recordings: chosen after the fact, so the comparison with the CNN is on the baselines' side.
"""

import numpy as np

from analysis.ranking_metrics import ranking_metrics
from audio_data.tone_features import FEATURES
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from models.linear_ranker import fit_logistic, standardised_pairs

SINGLE = tuple(f for f in FEATURES if f != "broadband_level_db")  # rankers on one number each
LOGISTIC = f"logistic ({len(FEATURES)} features)"
FIGURES = ("pairwise_accuracy", "kendall_tau_b", "spearman_rho")


def fit_rankers(x: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    """{name: {"weights": over FEATURES, "offset", "train_pairwise_accuracy"}} fitted on the training recordings'
    pairs: a recording's score is (x − offset)·weights."""
    mean, std, d, y = standardised_pairs(x, labels)
    rankers = {}
    for name in SINGLE:
        k = FEATURES.index(name)
        w = np.eye(len(FEATURES))[k]
        rankers[name] = w if np.mean(d[:, k] * y > 0) >= 0.5 else -w
    rankers[LOGISTIC] = fit_logistic(d, y)
    return {name: {"weights": w / std, "offset": mean, "train_pairwise_accuracy": float(np.mean((d @ w) * y > 0))}
            for name, w in rankers.items()}


def baseline_report(x: np.ndarray, labels: np.ndarray, train: list[int], evaluated: list[int],
                    classes: list[str]) -> dict:
    """Each ranker's training and evaluation figures, and which is best on the evaluation recordings."""
    report = {}
    for name, ranker in fit_rankers(x[train], labels[train]).items():
        scores = (x - ranker["offset"]) @ ranker["weights"]
        measured = ranking_metrics(scores[evaluated], labels[evaluated], classes)
        report[name] = {"weights": dict(zip(FEATURES, ranker["weights"].tolist())),
                        "train_pairwise_accuracy": ranker["train_pairwise_accuracy"],
                        **{key: measured[key] for key in FIGURES}}
    best = max(report, key=lambda name: np.nan_to_num(report[name]["pairwise_accuracy"], nan=-1.0))
    return {"features": list(FEATURES), "rankers": report, "best": best}


def run_baselines(recordings: SpectrogramDatasetWithMaterial, train: list[int], evaluated: list[int]) -> dict:
    """baseline_report on a run's recordings (their physical features, read from their files at the run's length),
    and in a run that pools subsets each subset's own (`per_subset`: fitted on its training recordings, measured on
    its evaluated ones); the features of each evaluated recording come along (`recordings`: path → FEATURES
    values)."""
    x, labels = recordings.physical_features(), recordings.labels.numpy()
    report = baseline_report(x, labels, train, evaluated, recordings.classes)
    if len(recordings.subset_names) > 1:
        subset = recordings.subset_index.numpy()
        report["per_subset"] = {name: baseline_report(x, labels, [i for i in train if subset[i] == s],
                                                      [i for i in evaluated if subset[i] == s], recordings.classes)
                                for s, name in enumerate(recordings.subset_names)}
    return {**report, "recordings": {recordings.paths[i]: x[i].tolist() for i in evaluated}}
