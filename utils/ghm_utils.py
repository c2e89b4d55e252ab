"""GHM statistics: one batch's as plain numpy, its plot, and reading a run's back (for notebooks).

    python -m utils.ghm_utils analyze <run stats folder or run name> [--out DIR]   (see utils/ghm_analysis.py)
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.errors import InputError  # noqa: E402

if TYPE_CHECKING:  # reading statistics back must not need torch
    from losses.ghm_loss import GHMRankingLoss
from utils.io_utils import save_figure  # noqa: E402
from utils.safe_pickle import load_pickle  # noqa: E402


def stats_batch_rule(spec: str) -> Callable[[int, int], bool]:
    """`first,last`, `all`, `every:N` (comma-combined) → whether batch b of an epoch of n gets a stats file."""
    tests = []
    for token in (t.strip() for t in spec.split(",")):
        if token == "first":
            tests.append(lambda b, n: b == 1)
        elif token == "last":
            tests.append(lambda b, n: b == n)
        elif token == "all":
            tests.append(lambda b, n: True)
        elif token.startswith("every:") and token[6:].isdigit() and int(token[6:]) >= 1:
            tests.append(lambda b, n, k=int(token[6:]): b % k == 0)
        else:
            raise ValueError(f"bad batch selection {token!r} in {spec!r}")
    return lambda batch, batches: any(test(batch, batches) for test in tests)


def ghm_batch_stats(criterion: "GHMRankingLoss", last: dict[str, np.ndarray], loss_type: str, run_name: str,
                    epoch: int, batch: int, global_step: int, pair_paths: list[tuple[str, str]],
                    pair_labels: list[tuple[int, int]]) -> dict:
    """A batch's GHM statistics (`last`: the loss's `last_stats` as numpy) as plain values, naming run and step.

    With loss_type "standard" the weights are those GHM would have given (`weights_applied` False).
    """
    g = last["g"].astype(np.float64)
    counts = last["bin_counts"].astype(np.int64)
    bin_weights = last["bin_weights"].astype(np.float64)
    return {
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
    dist_ax.set(xlabel="difficulty g = sigmoid((margin − t·(s1 − s2)) / T)", ylabel="pairs",
                title="Difficulty distribution", xlim=(0, 1))
    dist_ax.legend()
    weight_ax.bar(centers, stats["bin_weights"], width=0.8 * width, color="tab:green")
    weight_ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    title = "GHM bin weights" if stats["weights_applied"] else "bin weights GHM would give (not applied)"
    weight_ax.set(xlabel="difficulty g", ylabel="weight", title=title, xlim=(0, 1))
    fig.suptitle(f"{stats['loss_type']} loss, epoch {stats['epoch']}, batch {stats['batch']}: bins {stats['bins']}, "
                 f"alpha {stats['alpha']}, momentum {stats['momentum']}, T {stats['temperature']}, "
                 f"margin {stats['margin']}, mean g {stats['g_summary']['mean']:.3f}")
    save_figure(fig, path)


STATS_SCALARS = {"loss_type": str, "weights_applied": bool, "run_name": str, "epoch": int, "batch": int,
                 "global_step": int, "bins": int, "alpha": float, "margin": float, "momentum": float,
                 "temperature": float}
PER_BIN = ("bin_counts", "density", "bin_weights", "effective_counts")
PER_PAIR = ("g", "bin", "weight")


def stats_problem(s) -> str | None:
    """What makes `s` not a statistics record this module can use (None if it is one)."""
    if not isinstance(s, dict):
        return f"holds a {type(s).__name__}, not a statistics dict"
    missing = [key for key in (*STATS_SCALARS, "bin_edges", *PER_BIN, *PER_PAIR, "pair_paths", "pair_labels")
               if key not in s]
    if missing:
        return f"lacks {', '.join(missing)}"
    for key, kind in STATS_SCALARS.items():
        number = kind in (int, float) and not isinstance(s[key], bool)
        if not (isinstance(s[key], (int, float, np.number)) if number else isinstance(s[key], kind)):
            return f"{key} is a {type(s[key]).__name__}"
    bins, pairs = s["bins"], len(s["pair_paths"])
    arrays = {key: s[key] for key in ("bin_edges", *PER_BIN, *PER_PAIR, "pair_labels")}
    if not all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in arrays.values()):
        return "an array field is not a numeric numpy array"
    expected = {"bin_edges": (bins + 1,), **{k: (bins,) for k in PER_BIN}, **{k: (pairs,) for k in PER_PAIR},
                "pair_labels": (pairs, 2)}
    wrong = [key for key, shape in expected.items() if arrays[key].shape != shape]
    if wrong or bins < 1 or pairs < 1:
        return f"inconsistent sizes ({', '.join(wrong) or 'no bins or pairs'})"
    if not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in s["pair_paths"]):
        return "pair_paths is not a list of (path, path)"
    if not np.all((s["bin"] >= 0) & (s["bin"] < bins)):
        return "a pair's bin lies outside 0 … bins − 1"
    return None


def load_ghm_stats(path: str | Path) -> list[dict]:
    """One statistics file, or every `*_ghm_stats.pkl` of a run's stats folder, sorted by (epoch, batch).

    Read with the restricted unpickler (utils/safe_pickle.py); a file that is not a statistics record of this
    project is an InputError naming it.
    """
    path = Path(path)
    files = sorted(path.glob("*_ghm_stats.pkl")) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise InputError(f"{path}: no GHM statistics (*_ghm_stats.pkl) there")
    stats = []
    for file in files:
        s = load_pickle(file)
        if problem := stats_problem(s):
            raise InputError(f"{file}: not a GHM statistics file of this project ({problem})")
        stats.append(s)
    if len({(s["bins"], s["run_name"]) for s in stats}) > 1:
        raise InputError(f"{path}: the statistics files come from different runs or bin counts")
    return sorted(stats, key=lambda s: (s["epoch"], s["batch"]))


TABLE_COLUMNS = ("epoch", "batch", "bin", "lower_edge", "upper_edge", "count", "weight", "effective_count")


def ghm_stats_table(stats: list[dict]) -> dict[str, list]:
    """Long format, one row per (file, bin): a dict of equally long lists, ready for `pandas.DataFrame`."""
    table = {column: [] for column in TABLE_COLUMNS}
    for s in stats:
        edges = s["bin_edges"]
        for b in range(s["bins"]):
            row = (s["epoch"], s["batch"], b, float(edges[b]), float(edges[b + 1]), int(s["bin_counts"][b]),
                   float(s["bin_weights"][b]), float(s["effective_counts"][b]))
            for column, value in zip(TABLE_COLUMNS, row):
                table[column].append(value)
    return table


if __name__ == "__main__":
    from utils.ghm_analysis import main

    sys.exit(main())
