import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from analysis.ranking_metrics import class_pair_accuracy, kendall_tau_b, pairwise_accuracy, ranking_metrics, \
    spearman_rho

# Scores with ties (within and across classes), labels with ties.
SCORES = np.array([0.1, 0.5, 0.5, 1.2, 0.9, 2.0, 2.0, 1.5, 3.0, 0.5, 2.5, 2.5])
LABELS = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])


def brute_pairwise_accuracy(scores, labels):
    correct = total = 0
    for i, j in itertools.combinations(range(len(scores)), 2):
        if labels[i] == labels[j]:
            continue
        total += 1
        higher = i if labels[i] > labels[j] else j
        lower = j if higher == i else i
        correct += scores[higher] > scores[lower]
    return correct / total


def test_pairwise_accuracy_matches_a_double_loop_and_counts_ties_wrong():
    assert pairwise_accuracy(SCORES, LABELS) == pytest.approx(brute_pairwise_accuracy(SCORES, LABELS))
    assert pairwise_accuracy(np.zeros(4), np.array([0, 1, 2, 3])) == 0.0
    assert pairwise_accuracy(np.array([1.0, 2.0, 3.0]), np.array([0, 1, 2])) == 1.0


def test_kendall_and_spearman_match_scipy_with_ties():
    assert kendall_tau_b(SCORES, LABELS) == pytest.approx(kendalltau(SCORES, LABELS, variant="b").statistic)
    assert spearman_rho(SCORES, LABELS) == pytest.approx(spearmanr(SCORES, LABELS).statistic)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40).astype(float), rng.integers(0, 6, 40)
    assert kendall_tau_b(x, y) == pytest.approx(kendalltau(x, y, variant="b").statistic)
    assert spearman_rho(x, y) == pytest.approx(spearmanr(x, y).statistic)


def test_class_pair_matrix_matches_a_double_loop():
    matrix = class_pair_accuracy(SCORES, LABELS, 6)
    for i, j in itertools.product(range(6), repeat=2):
        if i == j:
            assert np.isnan(matrix[i, j])
            continue
        pairs = [(a, b) for a in np.flatnonzero(LABELS == i) for b in np.flatnonzero(LABELS == j)]
        correct = [(SCORES[a] > SCORES[b]) if i > j else (SCORES[a] < SCORES[b]) for a, b in pairs]
        assert matrix[i, j] == pytest.approx(np.mean(correct))


def test_ranking_metrics_are_plain_values():
    metrics = ranking_metrics(SCORES, LABELS, [f"c{k}" for k in range(6)])
    assert metrics["pairs"] == 60 and metrics["recordings"] == 12
    assert metrics["per_class"]["c2"] == {"count": 2, "mean": pytest.approx(1.45), "std": pytest.approx(0.55)}
    assert isinstance(metrics["class_pair_accuracy"], list)
    assert type(metrics["kendall_tau_b"]) is float
