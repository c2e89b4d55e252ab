"""Ranking measures between scores and class indices, exact over all pairs (O(n²) memory and time)."""

import numpy as np


def _pair_signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i − v_j) for every i < j, flattened."""
    i, j = np.triu_indices(len(values), k=1)
    return np.sign(values[i] - values[j])


def ordered_correctly(difference, target):
    """Whether each pair's score difference s1 − s2 has the sign of its target (±1): the one definition of a
    correctly ordered pair, for numpy arrays and torch tensors alike. A tie (or NaN) counts as wrong."""
    return target * difference > 0


def pairwise_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of pairs from different classes whose scores are ordered as their classes; a tie is wrong."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, float)
    i, j = np.triu_indices(len(scores), k=1)
    label_sign = np.sign(labels[i] - labels[j])
    different = label_sign != 0
    correct = ordered_correctly(scores[i] - scores[j], label_sign)
    return float(np.mean(correct[different])) if different.any() else float("nan")


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b: (concordant − discordant) / sqrt((n0 − ties_x)(n0 − ties_y))."""
    sx, sy = _pair_signs(np.asarray(x, float)), _pair_signs(np.asarray(y, float))
    denominator = np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    return float(np.sum(sx * sy) / denominator) if denominator else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the average ranks."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt(np.sum(rx ** 2) * np.sum(ry ** 2))
    return float(np.sum(rx * ry) / denominator) if denominator else float("nan")


def class_pair_accuracy(scores: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """[i, j]: share of (recording of class i, recording of class j) pairs ordered correctly; NaN on the
    diagonal and where a class has no recordings."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    matrix = np.full((n_classes, n_classes), np.nan)
    for i in range(n_classes):
        for j in range(n_classes):
            a, b = scores[labels == i], scores[labels == j]
            if i != j and len(a) and len(b):
                matrix[i, j] = np.mean(np.sign(a[:, None] - b[None, :]) == np.sign(i - j))
    return matrix


def ranking_metrics(scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """All measures as plain Python values (NaN where undefined)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    per_class = {name: {"count": int(np.sum(labels == k)),
                        "mean": float(np.mean(scores[labels == k])) if np.any(labels == k) else float("nan"),
                        "std": float(np.std(scores[labels == k])) if np.any(labels == k) else float("nan")}
                 for k, name in enumerate(classes)}
    n_pairs = int(np.count_nonzero(_pair_signs(labels.astype(float))))
    return {"recordings": int(len(scores)), "pairs": n_pairs,
            "pairwise_accuracy": pairwise_accuracy(scores, labels),
            "kendall_tau_b": kendall_tau_b(scores, labels),
            "spearman_rho": spearman_rho(scores, labels),
            "per_class": per_class,
            "class_pair_accuracy": class_pair_accuracy(scores, labels, len(classes)).tolist()}
