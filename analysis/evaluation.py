"""Evaluate a ranker on recordings: each scored once, its angle estimates from a calibration and, when the
recordings are labelled, the exact ranking measures, the estimates' accuracy and the simple baselines beside them.

train.py's final evaluation, evaluate.py, predict.py and `python -m analysis.baselines` all call `evaluate_model`;
analysis/report.py writes what it returns.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from analysis.calibration import estimate, estimate_metrics
from analysis.ranking_metrics import ranking_metrics
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from models.common import score

HEADLINE = ("pairwise_accuracy", "kendall_tau_b", "spearman_rho")  # summary.json's figures of a model
ESTIMATE_HEADLINE = ("class_accuracy", "mean_abs_angle_error_deg")  # and those of its angle estimates
VERSUS = ("best_baseline", "best_baseline_pairwise_accuracy", "best_baseline_kendall_tau_b", "vs_best_baseline",
          "baselines_pairwise_accuracy")
RESIDUAL = ("baseline_part_pairwise_accuracy", "residual_share", "pairs_reordered_by_residual")


@dataclass
class Recordings:
    """What an evaluation scores: spectrograms `[N, 1, F, T]` with their paths, the run's classes, and for
    labelled recordings their class indices and materials."""
    data: torch.Tensor
    paths: list[str]
    classes: list[str]
    labels: np.ndarray | None = None
    materials: list[str] | None = None
    extra: list[dict[str, str]] | None = None  # a manifest's own columns, each recording's
    features: torch.Tensor | None = None  # for a model that reads them: SpectrogramDatasetWithMaterial.load_features
    subsets: list[str] | None = None  # each one's subset, `<material>_<frequency>`, in a run that pools several

    @classmethod
    def of(cls, recordings: SpectrogramDatasetWithMaterial, indices: list[int]) -> "Recordings":
        """The labelled recordings at `indices` of a run's recordings (with their features where loaded)."""
        features = None if recordings.features is None else recordings.features[indices]
        subsets = [recordings.subset_names[k] for k in recordings.subset_index[indices].tolist()]
        return cls(recordings.data[indices], [recordings.paths[i] for i in indices], recordings.classes,
                   recordings.labels[indices].numpy(), [recordings.materials[i] for i in indices],
                   [recordings.selection.extra[i] for i in indices], features,
                   subsets if len(recordings.subset_names) > 1 else None)


@dataclass
class Report:
    """What `evaluate_model` found: every recording's score and estimate (`guess`: class index, angle in degrees,
    confidence); for labelled recordings the ranking measures (`metrics`), the estimates' accuracy (`estimates`)
    and the comparison with the baselines (`versus`, `baselines`); `about` says what was evaluated (split, model,
    epoch, checkpoint) and is written first into metrics.json."""
    recordings: Recordings
    title: str
    scores: np.ndarray
    calibration: dict
    guess: dict[str, np.ndarray]
    metrics: dict | None = None
    estimates: dict | None = None
    versus: dict = field(default_factory=dict)
    baselines: dict | None = None
    about: dict = field(default_factory=dict)

    def figures(self) -> dict:
        """The headline figures of a labelled evaluation, as summary.json keeps them (with a baseline-residual
        model's RESIDUAL figures, and in a run that pools subsets each one's, `per_subset`)."""
        figures = {**{key: self.metrics[key] for key in HEADLINE}, **{key: self.estimates[key] for key in
                                                                      ESTIMATE_HEADLINE},
                   **self.versus, **self.metrics.get("baseline_residual", {})}
        if "per_subset" in self.metrics:
            figures["per_subset"] = {name: {key: value for key, value in subset.items() if key in (
                *HEADLINE, *VERSUS, *RESIDUAL)} for name, subset in self.metrics["per_subset"].items()}
        return figures


@torch.inference_mode()
def score_recordings(model: nn.Module, data: torch.Tensor, device: torch.device, batch_size: int = 16,
                     between: Callable[[], None] = lambda: None, features: torch.Tensor | None = None
                     ) -> np.ndarray:
    """One score per spectrogram, in eval mode, each recording once (with its physical `features`, for a model that
    reads them); `between` runs before each batch (it may raise to stop, as train.py's signal check does)."""
    model.eval()
    scores = []
    for i in range(0, len(data), batch_size):
        between()
        rows = None if features is None else features[i:i + batch_size].to(device)
        scores.append(score(model, data[i:i + batch_size].to(device), rows).float().cpu())
    return torch.cat(scores).numpy().astype(np.float64)


@torch.inference_mode()
def residual_figures(model: nn.Module, features: torch.Tensor, labels: np.ndarray, classes: list[str],
                     scores: np.ndarray, device: torch.device) -> dict:
    """RESIDUAL of a baseline-residual model (models/baseline_residual.py) on labelled recordings (their `features`,
    `labels` and `scores`): the all-pairs accuracy of its fixed baseline part b alone; the residual r's share of the
    score's spread, std(r) / (std(b) + std(r)) (0: the baseline alone, 1: the residual alone); and the share of
    pairs of different classes that the score orders otherwise than b does."""
    base = model.baseline_score(features.to(device)).float().cpu().numpy().astype(np.float64)
    spread = np.std(base), np.std(scores - base)
    i, j = np.triu_indices(len(scores), k=1)
    keep = labels[i] != labels[j]
    reordered = np.sign(base[i] - base[j]) != np.sign(scores[i] - scores[j])
    return dict(zip(RESIDUAL, (ranking_metrics(base, labels, classes)["pairwise_accuracy"],
                               float(spread[1] / max(spread[0] + spread[1], 1e-12)),
                               float(np.mean(reordered[keep])) if keep.any() else float("nan"))))


def subset_metrics(model: nn.Module, recordings: Recordings, scores: np.ndarray, device: torch.device,
                   baselines: dict | None) -> dict:
    """Each subset's own figures in a run that pools several: the ranking measures over the pairs within it, a
    baseline-residual model's RESIDUAL, and VERSUS the baselines fitted and measured on that subset alone."""
    names, per_subset = np.asarray(recordings.subsets), {}
    for name in dict.fromkeys(recordings.subsets):
        rows = np.flatnonzero(names == name)
        labels = recordings.labels[rows]
        metrics = ranking_metrics(scores[rows], labels, recordings.classes)
        if hasattr(model, "baseline_score"):
            metrics.update(residual_figures(model, recordings.features[rows], labels, recordings.classes,
                                            scores[rows], device))
        if baselines is not None:
            metrics.update(versus(metrics, baselines["per_subset"][name]))
        per_subset[name] = metrics
    return per_subset


def measure(scores: np.ndarray, labels: np.ndarray, classes: list[str], materials: list[str] | None) -> dict:
    """Ranking measures; with recordings of several materials also those of each material on its own
    (`per_material`)."""
    metrics = ranking_metrics(scores, labels, classes)
    if materials is not None and len(set(materials)) > 1:
        kinds = np.asarray(materials)
        metrics["per_material"] = {m: ranking_metrics(scores[kinds == m], labels[kinds == m], classes)
                                   for m in sorted(set(materials))}
    return metrics


def versus(metrics: dict, baselines: dict) -> dict:
    """VERSUS, summary.json's comparison: the best baseline, its figures, the model's all-pairs accuracy minus the
    best baseline's, and every baseline's all-pairs accuracy (so that a fold set can choose one baseline over its
    folds, training/folds.py)."""
    best = baselines["rankers"][baselines["best"]]
    return dict(zip(VERSUS, (baselines["best"], best["pairwise_accuracy"], best["kendall_tau_b"],
                             metrics["pairwise_accuracy"] - best["pairwise_accuracy"],
                             {name: ranker["pairwise_accuracy"] for name, ranker in baselines["rankers"].items()})))


def evaluate_model(model: nn.Module, recordings: Recordings, device: torch.device, calibration: dict, title: str,
                   baselines: dict | None = None, about: dict | None = None,
                   between: Callable[[], None] = lambda: None) -> Report:
    """Score every recording once with `model` (eval mode) and turn the scores into angle estimates with
    `calibration`; for labelled recordings also measure the ranking and the estimates and, given the baselines
    (analysis/baselines.py's `run_baselines` on the same recordings), compare with them."""
    scores = score_recordings(model, recordings.data, device, between=between, features=recordings.features)
    report = Report(recordings, title, scores, calibration, estimate(calibration, scores), about=dict(about or {}))
    if recordings.labels is None:
        return report
    report.metrics = measure(scores, recordings.labels, recordings.classes, recordings.materials)
    if hasattr(model, "baseline_score"):
        report.metrics["baseline_residual"] = residual_figures(model, recordings.features, recordings.labels,
                                                               recordings.classes, scores, device)
    if recordings.subsets is not None:
        report.metrics["per_subset"] = subset_metrics(model, recordings, scores, device, baselines)
    report.estimates = estimate_metrics(calibration, scores, recordings.labels,
                                        recordings.materials or [""] * len(scores))
    if baselines is not None:
        report.versus, report.baselines = versus(report.metrics, baselines), baselines
    return report


def headline(metrics: dict) -> str:
    return (f"pairwise accuracy {metrics['pairwise_accuracy']:.3f}, Kendall tau-b {metrics['kendall_tau_b']:.3f}, "
            f"Spearman rho {metrics['spearman_rho']:.3f} ({metrics['recordings']} recordings, "
            f"all {metrics['pairs']} pairs of different classes)")


def subset_lines(metrics: dict) -> list[str]:
    """One line per subset of a run that pools several: its all-pairs accuracy, and against its best baseline."""
    return [f"  {name}: pairwise accuracy {m['pairwise_accuracy']:.3f} over {m['pairs']} pairs"
            + (f", best baseline {m['best_baseline_pairwise_accuracy']:.3f} ({m['best_baseline']}), "
               f"{m['vs_best_baseline']:+.3f}" if "vs_best_baseline" in m else "")
            for name, m in metrics.get("per_subset", {}).items()]


def estimate_headline(estimates: dict) -> str:
    error = estimates["mean_abs_angle_error_deg"]
    return (f"class accuracy {estimates['class_accuracy']:.3f}"
            + ("" if error is None else f", mean absolute angle error {error:.1f}°"))


def comparison_lines(models: dict[str, dict], baselines: dict) -> list[str]:
    """The table printed after an evaluation: one line per ranker, the models (name → figures) first."""
    lines = [f"{'ranker':<24} {'all-pairs acc':>13} {'Kendall tau':>11} {'train pairs acc':>15}"]
    for name, figures in models.items():
        lines.append(f"{name:<24} {figures['pairwise_accuracy']:>13.3f} {figures['kendall_tau_b']:>11.3f}")
    for name, figures in baselines["rankers"].items():
        mark = "  (best baseline)" if name == baselines["best"] else ""
        lines.append(f"{name:<24} {figures['pairwise_accuracy']:>13.3f} {figures['kendall_tau_b']:>11.3f} "
                     f"{figures['train_pairwise_accuracy']:>15.3f}{mark}")
    return lines
