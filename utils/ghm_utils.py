"""GHM statistics of one batch (plain numpy, for notebooks) and the gradient-distribution plot."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from losses.ghm_loss import GHMRankingLoss  # noqa: E402
from utils.io_utils import save_figure  # noqa: E402


def ghm_batch_stats(criterion: GHMRankingLoss, epoch: int, batch: int, pair_paths: list[tuple[str, str]],
                    run_name: str, global_step: int) -> dict:
    """The last batch's GHM statistics as plain Python and numpy values, naming their run and step."""
    last = {key: value.detach().cpu().numpy() for key, value in criterion.last_stats.items()}
    g = last["g"].astype(np.float64)
    counts = last["bin_counts"].astype(np.int64)
    return {
        "loss_type": "ghm",
        "run_name": run_name,
        "global_step": global_step,
        "epoch": epoch,
        "batch": batch,
        "bins": criterion.bins,
        "alpha": criterion.alpha,
        "margin": criterion.margin,
        "bin_edges": np.linspace(0.0, 1.0, criterion.bins + 1),
        "bin_counts": counts,
        "bin_weights": last["bin_weights"].astype(np.float64),
        "effective_counts": counts * last["bin_weights"].astype(np.float64),
        "g": g,
        "bin": last["bin"].astype(np.int64),
        "weight": last["weight"].astype(np.float64),
        "g_summary": {"mean": float(g.mean()), "median": float(np.median(g)), "min": float(g.min()),
                      "max": float(g.max()), "std": float(g.std())},
        "pair_paths": [(str(a), str(b)) for a, b in pair_paths],
    }


def plot_grad_distribution(stats: dict, path: str) -> None:
    """Pairs per difficulty bin before and after GHM weighting, and the bin weights."""
    edges = stats["bin_edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    fig, (dist_ax, weight_ax) = plt.subplots(1, 2, figsize=(11, 4))
    dist_ax.bar(centers - width / 5, stats["bin_counts"], width=0.4 * width, label="pairs (before)")
    dist_ax.bar(centers + width / 5, stats["effective_counts"], width=0.4 * width,
                label="pairs × weight (after)")
    dist_ax.set(xlabel="difficulty g = sigmoid(margin − t·(s1 − s2))", ylabel="pairs",
                title="Difficulty distribution", xlim=(0, 1))
    dist_ax.legend()
    weight_ax.bar(centers, stats["bin_weights"], width=0.8 * width, color="tab:green")
    weight_ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    weight_ax.set(xlabel="difficulty g", ylabel="weight", title="GHM bin weights", xlim=(0, 1))
    fig.suptitle(f"epoch {stats['epoch']}, batch {stats['batch']}: bins {stats['bins']}, "
                 f"alpha {stats['alpha']}, margin {stats['margin']}, mean g {stats['g_summary']['mean']:.3f}")
    save_figure(fig, path)
