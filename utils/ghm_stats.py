"""Reading a run's GHM statistics files back: checked records sorted by (epoch, batch), and a long table.

Needs neither torch nor pandas; files are read with the restricted unpickler (utils/safe_pickle.py).
"""

from pathlib import Path

import numpy as np

from utils.errors import InputError
from utils.io_utils import format_problem
from utils.run_paths import STATS_GLOB
from utils.safe_pickle import load_pickle

STATS_FORMAT = 2  # 1: files without a format_version entry; 2: with it (2026-11-26); utils/ghm_utils.py writes it
STATS_SCALARS = {"loss_type": str, "weights_applied": bool, "run_name": str, "epoch": int, "batch": int,
                 "global_step": int, "bins": int, "alpha": float, "margin": float, "momentum": float,
                 "temperature": float}
PER_BIN = ("bin_counts", "density", "bin_weights", "effective_counts")
PER_PAIR = ("g", "bin", "weight")


def stats_problem(s) -> str | None:
    """What makes `s` not a statistics record this module can use (None if it is one)."""
    if not isinstance(s, dict):
        return f"holds a {type(s).__name__}, not a statistics dict"
    if problem := format_problem(s, STATS_FORMAT):
        return problem
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
    classes = s.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "classes is not a list of class names"
    if not np.all((s["bin"] >= 0) & (s["bin"] < bins)):
        return "a pair's bin lies outside 0 … bins − 1"
    return None


def load_ghm_stats(path: str | Path) -> list[dict]:
    """One statistics file, or every `*_ghm_stats.pkl` of a run's stats folder, sorted by (epoch, batch).

    Read with the restricted unpickler (utils/safe_pickle.py); a file that is not a statistics record of this
    project is an InputError naming it.
    """
    path = Path(path)
    files = sorted(path.glob(STATS_GLOB)) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise InputError(f"{path}: no GHM statistics ({STATS_GLOB}) there")
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
