"""A pairwise logistic ranker on a few numbers per recording: fitted by Newton's method on the feature differences
of pairs of different classes, it scores a recording by w·x. The simple baselines (analysis/baseline_rankers.py)
and the baseline-residual model's starting point (models/baseline_residual.py) are such rankers."""

import numpy as np

L2 = 1e-2
MAX_PAIRS = 200_000  # training pairs a ranker is fitted on, at most


def pair_differences(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x_i − x_j and sign(label_i − label_j) for the pairs i < j of different classes: all of them, or a seeded
    sample of MAX_PAIRS where there are more (a lab's thousands of recordings would need gigabytes)."""
    i, j = np.triu_indices(len(labels), k=1)
    keep = np.flatnonzero(labels[i] != labels[j])
    if len(keep) > MAX_PAIRS:
        keep = np.sort(np.random.default_rng(0).choice(keep, MAX_PAIRS, replace=False))
    i, j = i[keep], j[keep]
    return x[i] - x[j], np.sign(labels[i] - labels[j]).astype(np.float64)


def fit_logistic(d: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """w minimising Σ log(1 + exp(−y w·d)) + L2/2 · n_pairs · |w|² over the pairs' feature differences d and
    targets y (Newton's method)."""
    w = np.zeros(d.shape[1])
    for _ in range(iterations):
        margin = y * (d @ w)
        p = 0.5 * (1 - np.tanh(margin / 2))  # σ(−margin), without overflow
        gradient = -(d * (y * p)[:, None]).sum(axis=0) + L2 * len(y) * w
        hessian = (d * (p * (1 - p))[:, None]).T @ d + L2 * len(y) * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def margin_scale(t: np.ndarray, margin: float, candidates: int = 256) -> float:
    """The gain a > 0 minimising Σ max(0, margin − a·t) over the pairs' signed score differences t: the scale at
    which a ranker's scores suit a margin loss. The sum is convex and piecewise linear in a, so its minimum lies at
    a breakpoint margin / t_p (the smallest such, where several reach it); with many pairs, at one of `candidates`
    quantiles of them. 1 where no pair is ordered right."""
    breakpoints = np.unique(margin / t[t > 0])
    if not len(breakpoints):
        return 1.0
    if len(breakpoints) > candidates:
        breakpoints = np.quantile(breakpoints, np.linspace(0, 1, candidates))
    losses = [np.maximum(0.0, margin - a * t).sum() for a in breakpoints]
    return float(breakpoints[int(np.argmin(losses))])


def standardised_pairs(x: np.ndarray, labels: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, d, y): each column's mean and standard deviation (1 where a column is constant), and
    `pair_differences` of the standardised x, on which a ranker's weights are fitted."""
    std = x.std(axis=0)
    mean, std = x.mean(axis=0), np.where(std > 0, std, 1.0)
    return mean, std, *pair_differences((x - mean) / std, labels)
