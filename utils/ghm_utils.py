"""GHM statistics: one batch's as plain numpy and its plot; reading a run's back (for notebooks) is
`load_ghm_stats` and `ghm_stats_table` (utils/ghm_stats.py). The run-level analysis is
`python -m analysis.ghm_runs analyze <run stats folder or run name>`.
"""

import sys
from typing import TYPE_CHECKING

import numpy as np

from config import stats_batch_rule  # noqa: F401  (its public name here; the syntax is a setting's)
from utils.ghm_stats import STATS_FORMAT, TABLE_COLUMNS, ghm_stats_table, load_ghm_stats  # noqa: F401
from utils.plotting import save_figure, subplots

if TYPE_CHECKING:  # reading statistics back must not need torch
    from losses.ghm_loss import GHMRankingLoss


def ghm_batch_stats(criterion: "GHMRankingLoss", last: dict[str, np.ndarray], loss_type: str, run_name: str,
                    epoch: int, batch: int, global_step: int, pair_paths: list[tuple[str, str]],
                    pair_labels: list[tuple[int, int]], classes: list[str], class_angles: list[float | None],
                    pair_materials: list[tuple[str, str]]) -> dict:
    """A batch's GHM statistics (`last`: the loss's `last_stats` as numpy) as plain values, naming run and step;
    `pair_labels` index `classes` (the run's, in rank order) and `class_angles` are their angles in degrees (None,
    stored as NaN, where a name holds none).

    With loss_type "standard" the weights are those GHM would have given (`weights_applied` False).
    """
    g = last["g"].astype(np.float64)
    counts = last["bin_counts"].astype(np.int64)
    bin_weights = last["bin_weights"].astype(np.float64)
    return {
        "format_version": STATS_FORMAT,
        "loss_type": loss_type,
        "weights_applied": loss_type == "ghm",
        "run_name": run_name,
        "epoch": epoch,
        "batch": batch,
        "global_step": global_step,
        "bins": criterion.bins,
        "alpha": criterion.alpha,
        "margin": criterion.margin,
        "momentum": criterion.momentum,
        "temperature": criterion.temperature,
        "max_weight": criterion.max_weight,
        "bin_edges": np.linspace(0.0, 1.0, criterion.bins + 1),
        "bin_counts": counts,
        "density": last["density"].astype(np.float64),
        "bin_weights": bin_weights,
        "effective_counts": counts * bin_weights,
        "g": g,
        "bin": last["bin"].astype(np.int64),
        "weight": last["weight"].astype(np.float64),
        "g_summary": {"mean": float(g.mean()), "median": float(np.median(g)), "min": float(g.min()),
                      "max": float(g.max()), "std": float(g.std())},
        "pair_paths": [(str(a), str(b)) for a, b in pair_paths],
        "pair_labels": np.asarray(pair_labels, dtype=np.int64),
        "pair_materials": [(str(a), str(b)) for a, b in pair_materials],
        "classes": list(classes),
        "class_angles": np.array([np.nan if angle is None else angle for angle in class_angles], dtype=np.float64),
    }


def before_after_bars(ax, edges: np.ndarray, before: np.ndarray, after: np.ndarray, before_label: str,
                      after_label: str) -> None:
    """Two bars in each difficulty bin: the pairs before GHM weighting and after (count × weight)."""
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    ax.bar(centers - width / 5, before, width=0.4 * width, label=before_label)
    ax.bar(centers + width / 5, after, width=0.4 * width, label=after_label)
    ax.legend()


def plot_grad_distribution(stats: dict, path: str) -> None:
    """Pairs per difficulty bin before and after GHM weighting, and the bin weights."""
    edges = stats["bin_edges"]
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig, (dist_ax, weight_ax) = subplots(1, 2, figsize=(11, 4))
    before_after_bars(dist_ax, edges, stats["bin_counts"], stats["effective_counts"], "pairs (before)",
                      "pairs × weight (after)")
    dist_ax.set(xlabel="difficulty g = sigmoid((margin − t·(s1 − s2)) / T)", ylabel="pairs",
                title="Difficulty distribution", xlim=(0, 1))
    weight_ax.bar(centers, stats["bin_weights"], width=0.8 * width, color="tab:green")
    weight_ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    title = "GHM bin weights" if stats["weights_applied"] else "bin weights GHM would give (not applied)"
    weight_ax.set(xlabel="difficulty g", ylabel="weight", title=title, xlim=(0, 1))
    fig.suptitle(f"{stats['loss_type']} loss, epoch {stats['epoch']}, batch {stats['batch']}: bins {stats['bins']}, "
                 f"alpha {stats['alpha']}, momentum {stats['momentum']}, T {stats['temperature']}, "
                 f"margin {stats['margin']}, mean g {stats['g_summary']['mean']:.3f}")
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit("python -m utils.ghm_utils analyze ... is now: python -m analysis.ghm_runs analyze ...")
