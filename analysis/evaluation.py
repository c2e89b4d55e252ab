"""Score recordings once each and write the evaluation report: metrics.json, scores.csv and two plots."""

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from utils.io_utils import atomic_path, save_json
from utils.plotting import save_figure, subplots
from analysis.calibration import estimate, estimate_metrics
from analysis.ranking_metrics import ranking_metrics


@torch.inference_mode()
def score_recordings(model: nn.Module, data: torch.Tensor, device: torch.device, batch_size: int = 16,
                     between: Callable[[], None] = lambda: None) -> np.ndarray:
    """One score per spectrogram, in eval mode, each recording once; `between` runs before each batch (it may
    raise to stop, as train.py's signal check does)."""
    model.eval()
    scores = []
    for i in range(0, len(data), batch_size):
        between()
        scores.append(model(data[i:i + batch_size].to(device)).float().cpu())
    return torch.cat(scores).numpy().astype(np.float64)


def evaluate_recordings(model: nn.Module, data: torch.Tensor, labels: np.ndarray, classes: list[str],
                        device: torch.device, between: Callable[[], None] = lambda: None,
                        materials: list[str] | None = None) -> tuple[np.ndarray, dict]:
    """Scores and ranking measures; with recordings of several materials also the measures of each material's
    recordings on their own (`per_material`)."""
    scores = score_recordings(model, data, device, between=between)
    metrics = ranking_metrics(scores, labels, classes)
    if materials is not None and len(set(materials)) > 1:
        kinds = np.asarray(materials)
        metrics["per_material"] = {m: ranking_metrics(scores[kinds == m], labels[kinds == m], classes)
                                   for m in sorted(set(materials))}
    return scores, metrics


HEADLINE = ("pairwise_accuracy", "kendall_tau_b", "spearman_rho")  # summary.json's figures of a model
ESTIMATE_HEADLINE = ("class_accuracy", "mean_abs_angle_error_deg")  # and those of its angle estimates


def headline(metrics: dict) -> str:
    return (f"pairwise accuracy {metrics['pairwise_accuracy']:.3f}, Kendall tau-b {metrics['kendall_tau_b']:.3f}, "
            f"Spearman rho {metrics['spearman_rho']:.3f} ({metrics['recordings']} recordings, "
            f"all {metrics['pairs']} pairs of different classes)")


def plain_json(value):
    """NaN → None, so that metrics.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    return value


def plot_scores_by_class(scores: np.ndarray, labels: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    fig, ax = subplots(figsize=(7, 4))
    groups = [scores[labels == k] for k in range(len(classes))]
    ax.boxplot([g if len(g) else [np.nan] for g in groups], tick_labels=classes, showfliers=False)
    rng = np.random.default_rng(0)
    for k, group in enumerate(groups):
        ax.plot(k + 1 + rng.uniform(-0.12, 0.12, len(group)), group, "o", ms=3, alpha=0.6, color="tab:blue")
    ax.set(xlabel="angle class", ylabel="score", title=title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_pair_accuracy(matrix: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    fig, ax = subplots(figsize=(6, 5))
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap="RdYlGn")
    for (i, j), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="class j", ylabel="class i", title=title)
    fig.colorbar(image, ax=ax, label="share of (i, j) pairs ordered correctly")
    save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    fig, ax = subplots(figsize=(6, 5))
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="estimated class", ylabel="true class", title=title)
    fig.colorbar(image, ax=ax, label="share of the true class's recordings")
    save_figure(fig, path)


def write_evaluation(out: Path, paths: list[str], labels: np.ndarray, scores: np.ndarray, metrics: dict,
                     classes: list[str], title: str, extra: dict | None = None, materials: list[str] | None = None,
                     calibration: dict | None = None) -> dict | None:
    """metrics.json, scores.csv and the plots; with a calibration also the angle estimates (class accuracy and
    mean absolute angle error, per class and material, in metrics.json's `estimate`; confusion.png), which it
    returns."""
    out = Path(out)
    materials = materials or [""] * len(paths)
    estimates = None if calibration is None else estimate_metrics(calibration, scores, labels, materials)
    guess = None if calibration is None else estimate(calibration, scores)
    save_json(plain_json({**(extra or {}), **metrics, "estimate": estimates}), out / "metrics.json")
    with atomic_path(out / "scores.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "class", "material", "score", "estimated_class", "estimated_angle_deg",
                         "confidence"])
        for i, (path, label, score) in enumerate(zip(paths, labels, scores)):
            estimated = ["", "", ""] if guess is None else [
                classes[guess["class"][i]], f"{guess['angle'][i]:.4g}", f"{guess['confidence'][i]:.4f}"]
            writer.writerow([path, classes[label], materials[i], f"{score:.9g}", *estimated])
    plot_scores_by_class(scores, labels, classes, out / "scores_by_class.png", f"Scores by class: {title}")
    plot_pair_accuracy(np.array(metrics["class_pair_accuracy"], dtype=float), classes, out / "pair_accuracy.png",
                       f"Pairs ordered correctly: {title}")
    if estimates is not None:
        plot_confusion(np.array(estimates["confusion"]), classes, out / "confusion.png", f"Estimated class: {title}")
    return estimates


def estimate_headline(estimates: dict) -> str:
    error = estimates["mean_abs_angle_error_deg"]
    return (f"class accuracy {estimates['class_accuracy']:.3f}"
            + ("" if error is None else f", mean absolute angle error {error:.1f}°"))
