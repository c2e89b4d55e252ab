"""From a ranker's score to an angle estimate: a calibration fitted on the training recordings' scores.

Each class's scores are modelled as a normal distribution with the class's own mean and one standard deviation
shared by all classes (pooled within-class spread; equal priors). A recording's class posterior is then
p(k | s) ∝ exp(−(s − μ_k)² / 2σ²); the estimated class is the most probable one, the confidence its posterior,
and the estimated angle the posterior mean of the class angles (docs/evaluation.md says why this and not an
isotonic fit). Plain lists and floats, so that a checkpoint holding it loads with weights_only=True.
"""

import math

import numpy as np

CALIBRATION = "class-normal-pooled-std"


def fit_calibration(scores: np.ndarray, labels: np.ndarray, classes: list[str],
                    angles: list[float | None]) -> dict:
    """The calibration of one model from the scores and labels of its training recordings."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    present = [k for k in range(len(classes)) if np.any(labels == k)]
    means = [float(scores[labels == k].mean()) if k in present else math.nan for k in range(len(classes))]
    residuals = np.concatenate([scores[labels == k] - means[k] for k in present])
    spread = float(np.sqrt(np.sum(residuals ** 2) / max(1, len(residuals) - len(present))))
    floor = 1e-6 * max(1.0, float(np.ptp(scores)))  # identical scores within every class
    return {"method": CALIBRATION, "classes": list(classes), "angles": list(angles), "means": means,
            "std": max(spread, floor), "recordings": int(len(scores))}


def calibration_problem(calibration: object) -> str | None:
    """What makes a stored calibration unusable (None if it is one of ours)."""
    if not isinstance(calibration, dict) or calibration.get("method") != CALIBRATION:
        return "not a calibration this program writes"
    classes, angles, means = (calibration.get(key) for key in ("classes", "angles", "means"))
    if not (isinstance(classes, list) and isinstance(angles, list) and isinstance(means, list)
            and len(classes) == len(angles) == len(means) >= 2):
        return "its classes, angles and means do not match"
    if not all(isinstance(x, (int, float)) for x in means) or not all(
            a is None or isinstance(a, (int, float)) for a in angles):
        return "its means or angles are not numbers"
    std = calibration.get("std")
    if not isinstance(std, (int, float)) or not std > 0 or not math.isfinite(std):
        return "its std is not a positive number"
    return None


def class_posteriors(calibration: dict, scores: np.ndarray) -> np.ndarray:
    """p(class | score) for each score, [n, classes]; classes absent from training get probability 0."""
    means = np.asarray(calibration["means"], dtype=np.float64)
    z = -0.5 * ((np.asarray(scores, dtype=np.float64)[:, None] - means[None, :]) / calibration["std"]) ** 2
    z = np.where(np.isnan(means)[None, :], -np.inf, z)
    z -= z.max(axis=1, keepdims=True)
    weights = np.exp(z)
    return weights / weights.sum(axis=1, keepdims=True)


def estimate(calibration: dict, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Estimated class index, angle in degrees and confidence per score. The angle is the posterior mean over the
    classes that have angles; NaN when the estimated class has none."""
    posterior = class_posteriors(calibration, scores)
    angles = np.array([math.nan if a is None else a for a in calibration["angles"]], dtype=np.float64)
    known = ~np.isnan(angles)
    chosen = posterior.argmax(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        angle = posterior[:, known] @ angles[known] / posterior[:, known].sum(axis=1)
    return {"class": chosen, "angle": np.where(known[chosen], angle, math.nan), "confidence": posterior.max(axis=1)}


def estimate_metrics(calibration: dict, scores: np.ndarray, labels: np.ndarray, materials: list[str]) -> dict:
    """Class accuracy and mean absolute angle error (degrees) overall, per class and per material, and the
    confusion matrix (rows: true class, columns: estimated class)."""
    guess = estimate(calibration, scores)
    labels = np.asarray(labels)
    angles = np.array([math.nan if a is None else a for a in calibration["angles"]], dtype=np.float64)
    errors = np.abs(guess["angle"] - angles[labels])
    correct = guess["class"] == labels
    n = len(calibration["classes"])
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, guess["class"]), 1)

    def measures(mask: np.ndarray) -> dict:
        finite = errors[mask][np.isfinite(errors[mask])]
        return {"recordings": int(mask.sum()), "class_accuracy": float(correct[mask].mean()) if mask.any() else None,
                "mean_abs_angle_error_deg": float(finite.mean()) if len(finite) else None}
    materials = np.asarray(materials)
    return {**measures(np.ones(len(labels), dtype=bool)),
            "per_class": {c: measures(labels == k) for k, c in enumerate(calibration["classes"])},
            "per_material": {m: measures(materials == m) for m in sorted(set(materials.tolist()))},
            "confusion": confusion.tolist()}
