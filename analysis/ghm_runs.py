"""Run-level GHM analysis: how the difficulty distribution moves, which recordings stay hard, two runs compared.

    python -m analysis.ghm_runs analyze <run stats folder or run name> [--save-dir DIR] [--out DIR] [--hard-bins K]
    python -m analysis.ghm_runs analyze --compare RUN_A RUN_B [--save-dir DIR] [--out DIR]

Reads the statistics files that exist (a run in progress works), of GHM runs and of standard runs recorded
with --ghm-stats (their weights are the ones GHM would have given).
"""

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from audio_data.naming import recording_labels
from utils.errors import InputError, run_command
from utils.ghm_stats import load_ghm_stats
from utils.ghm_utils import before_after_bars
from utils.history import history_problem
from utils.io_utils import atomic_path, output_folder, save_json
from utils.plotting import save_figure, subplots
from utils.run_paths import RunPaths, analysis_folder
from utils.safe_pickle import load_pickle

TOP_RECORDINGS = 20


def stats_folder(run: str, save_dir: str) -> Path:
    """A stats folder given directly, or `<save_dir>/stats/<run name>`."""
    if Path(run).is_dir():
        return Path(run)
    try:
        folder = RunPaths.named(save_dir, run).stats
    except InputError:
        folder = None
    if folder is None or not folder.is_dir():
        raise InputError(f"{run}: neither a stats folder nor a run with statistics under {save_dir}")
    return folder


def by_epoch(stats: list[dict]) -> dict[int, list[dict]]:
    epochs = defaultdict(list)
    for s in stats:
        epochs[s["epoch"]].append(s)
    return dict(sorted(epochs.items()))


def effective_examples(weight: np.ndarray) -> float:
    """Kish's effective sample size of a weighted batch, (Σw)² / Σw²: the batch size when all weights are equal."""
    return float(weight.sum() ** 2 / (weight ** 2).sum()) if weight.any() else 0.0


def epoch_distributions(stats: list[dict]) -> dict[str, np.ndarray]:
    """Per recorded epoch: share of pairs per bin before and after weighting, and the mean weight of each bin."""
    epochs = by_epoch(stats)
    before, after, weights = [], [], []
    for records in epochs.values():
        counts = sum(s["bin_counts"] for s in records).astype(np.float64)
        effective = sum(s["effective_counts"] for s in records)
        seen = sum((s["bin_counts"] > 0).astype(np.float64) for s in records)
        weight_sum = sum(s["bin_weights"] for s in records)
        before.append(counts / counts.sum())
        after.append(effective / effective.sum())
        weights.append(np.divide(weight_sum, seen, out=np.full_like(weight_sum, np.nan), where=seen > 0))
    return {"epochs": np.array(list(epochs)), "before": np.array(before), "after": np.array(after),
            "weights": np.array(weights)}


def epoch_summary(stats: list[dict], hard_bins: int) -> list[dict]:
    """Per epoch: mean g, share of pairs in the `hard_bins` easiest and hardest bins, effective examples."""
    rows = []
    for epoch, records in by_epoch(stats).items():
        bins = records[0]["bins"]
        pair_bins = np.concatenate([s["bin"] for s in records])
        ess = [effective_examples(s["weight"]) for s in records]
        rows.append({"epoch": epoch, "batches": len(records), "pairs": int(len(pair_bins)),
                     "mean_g": float(np.concatenate([s["g"] for s in records]).mean()),
                     "share_easiest_bins": float(np.mean(pair_bins < hard_bins)),
                     "share_hardest_bins": float(np.mean(pair_bins >= bins - hard_bins)),
                     "effective_examples_per_batch": float(np.mean(ess)),
                     "effective_share": float(np.mean([e / len(s["g"]) for e, s in zip(ess, records)]))})
    return rows


def hard_recordings(stats: list[dict], hard_bins: int) -> list[dict]:
    """Every recording: pairs it was in, how many fell in the `hard_bins` hardest bins; hardest first."""
    pairs, hard = defaultdict(int), defaultdict(int)
    for s in stats:
        is_hard = s["bin"] >= s["bins"] - hard_bins
        for (a, b), h in zip(s["pair_paths"], is_hard):
            for path in (a, b):
                pairs[path] += 1
                hard[path] += int(h)
    rows = [{"path": path, **recording_labels(path), "hard_pairs": hard[path], "pairs": n,
             "hard_share": hard[path] / n} for path, n in pairs.items()]
    return sorted(rows, key=lambda r: (-r["hard_pairs"], -r["hard_share"], r["path"]))


def write_csv(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def heatmap(ax, values: np.ndarray, epochs: np.ndarray, title: str, label: str, **style) -> None:
    """Rows are the recorded epochs in order (an epoch without statistics has no row)."""
    image = ax.imshow(values, aspect="auto", origin="lower", interpolation="nearest",
                      extent=(0, 1, -0.5, len(epochs) - 0.5), **style)
    ax.set(xlabel=f"difficulty g ({values.shape[1]} bins)", ylabel="epoch", title=title)
    ticks = np.unique(np.linspace(0, len(epochs) - 1, min(len(epochs), 12)).round().astype(int))
    ax.set_yticks(ticks, [str(epochs[t]) for t in ticks])
    ax.figure.colorbar(image, ax=ax, label=label)


def plot_evolution(stats: list[dict], path: Path) -> None:
    d = epoch_distributions(stats)
    applied = stats[0]["weights_applied"]
    fig, axes = subplots(1, 3, figsize=(16, 4.5), layout="constrained")
    heatmap(axes[0], d["before"], d["epochs"], "pairs per bin (before weighting)", "share of the epoch's pairs")
    heatmap(axes[1], d["after"], d["epochs"], "pairs × weight (after weighting)" if applied
            else "pairs × weight GHM would give (not applied)", "share of the weighted total")
    log_weights = np.log10(d["weights"])
    extent = max(np.nanmax(np.abs(log_weights)), 1e-3)
    heatmap(axes[2], log_weights, d["epochs"], "mean bin weight", "log10 weight (blank: bin never filled)",
            cmap="coolwarm", vmin=-extent, vmax=extent)
    s = stats[0]
    fig.suptitle(f"{s['run_name']}: {s['loss_type']} loss, bins {s['bins']}, alpha {s['alpha']}, momentum "
                 f"{s['momentum']}, T {s['temperature']}, margin {s['margin']} ({len(stats)} recorded batches)")
    save_figure(fig, path)


def plot_hard(rows: list[dict], hard_bins: int, path: Path, order: list[str] | None) -> None:
    """The hardest recordings, and the share of each class's pairs in the hardest bins (classes in the run's
    rank order when the statistics name it)."""
    top = rows[:TOP_RECORDINGS][::-1]
    found = {r["class"] for r in rows}
    classes = [c for c in order if c in found] if order else sorted(found)
    per_class = [sum(r["hard_pairs"] for r in rows if r["class"] == c) /
                 max(1, sum(r["pairs"] for r in rows if r["class"] == c)) for c in classes]
    fig, (top_ax, class_ax) = subplots(1, 2, figsize=(15, 0.3 * len(top) + 2.5), layout="constrained",
                                           gridspec_kw={"width_ratios": [2, 1]})
    top_ax.barh([Path(r["path"]).name for r in top], [r["hard_pairs"] for r in top], color="tab:red")
    top_ax.set(xlabel=f"pairs in the {hard_bins} hardest bins", title=f"top {len(top)} hardest recordings")
    class_ax.bar(classes, per_class, color="tab:purple")
    class_ax.set(xlabel="class", ylabel="share of its pairs in the hardest bins", title="by class")
    class_ax.tick_params(axis="x", rotation=45)
    save_figure(fig, path)


def analyze(folder: Path, out: Path, hard_bins: int) -> None:
    stats = load_ghm_stats(folder)
    bins = stats[0]["bins"]
    if not 1 <= hard_bins <= bins:
        raise InputError(f"--hard-bins {hard_bins}: must be between 1 and the run's {bins} bins")
    plot_evolution(stats, out / "ghm_evolution.png")
    rows = hard_recordings(stats, hard_bins)
    write_csv(rows, out / "hard_recordings.csv")
    plot_hard(rows, hard_bins, out / "hard_recordings.png", stats[-1].get("classes"))
    first = stats[0]
    save_json({"run": first["run_name"], "loss_type": first["loss_type"], "weights_applied": first["weights_applied"],
               "ghm": {key: first[key] for key in ("bins", "alpha", "margin", "momentum", "temperature",
                                                   "max_weight")},
               "hard_bins": hard_bins, "recorded_batches": len(stats), "epochs": epoch_summary(stats, hard_bins)},
              out / "ghm_summary.json")
    print(f"{len(stats)} statistics files of {first['run_name']} → {out}/ (ghm_evolution.png, hard_recordings.csv, "
          "hard_recordings.png, ghm_summary.json)")


def run_history(folder: Path) -> dict:
    """The training history of the run whose stats folder this is (`<save_dir>/stats/<run>`)."""
    try:
        path = RunPaths.named(folder.parent.parent, folder.name).history
    except InputError as exc:
        raise InputError(f"{folder}: not the stats folder of a run ({exc})") from None
    if not path.is_file():
        raise InputError(f"{path}: no training history for run {folder.name}")
    history = load_pickle(path)
    if problem := history_problem(history):
        raise InputError(f"{path}: not a training history of this project ({problem})")
    return history


def plot_final_distribution(ax, stats: list[dict], name: str) -> None:
    last = [s for s in stats if s["epoch"] == stats[-1]["epoch"]]
    counts = sum(s["bin_counts"] for s in last).astype(np.float64)
    effective = sum(s["effective_counts"] for s in last)
    before_after_bars(ax, last[0]["bin_edges"], counts / counts.sum(), effective / effective.sum(),
                      "before weighting", "after" if last[0]["weights_applied"] else "after (would be; not applied)")
    ax.set(xlabel="difficulty g", ylabel="share of pairs", xlim=(0, 1),
           title=f"{name}\nepoch {last[0]['epoch']}, {len(last)} recorded batches")


def compare(folders: list[Path], out: Path) -> None:
    runs = [(folder.name, run_history(folder), load_ghm_stats(folder)) for folder in folders]
    fig, axes = subplots(2, 2, figsize=(13, 9), layout="constrained")
    for name, history, _ in runs:
        axes[0, 0].plot(history["epoch"], history["val_accuracy"], "o-", label=name)
        axes[0, 1].plot(history["epoch"], history["val_loss_standard_log"], "o-", label=name)
    axes[0, 0].set(xlabel="epoch", ylabel="pairwise accuracy", title="validation accuracy")
    axes[0, 1].set(xlabel="epoch", ylabel="margin ranking loss", title="validation loss (standard margin loss)")
    for ax in axes[0]:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax, (name, _, stats) in zip(axes[1], runs):
        plot_final_distribution(ax, stats, name)
    save_figure(fig, out / "compare.png")
    print(f"comparison of {runs[0][0]} and {runs[1][0]} → {out / 'compare.png'}")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.ghm_runs", description="Analyse a run's GHM statistics.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="evolution, hard recordings and per-epoch summary of a run, or --compare")
    a.add_argument("run", nargs="?", help="a run's stats folder, or a run name under --save-dir/stats")
    a.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two runs in one figure")
    a.add_argument("--save-dir", default="saved_models", help="where run names are looked up (default: %(default)s)")
    a.add_argument("--out", help="output folder (default: <save-dir>/analysis/<run>, or <A>_vs_<B>)")
    a.add_argument("--hard-bins", type=int, default=2, help="how many top bins count as hard (default: %(default)s)")
    return p


def run(args: argparse.Namespace) -> int:
    folders = [stats_folder(run, args.save_dir) for run in (args.compare or [args.run])]
    name = "_vs_".join(folder.name for folder in folders)
    out = output_folder(Path(args.out) if args.out else analysis_folder(folders[0].parent.parent, name))
    if args.compare:
        compare(folders, out)
    else:
        analyze(folders[0], out, args.hard_bins)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if (args.run is None) == (args.compare is None):
        parser.error("give one run to analyse, or --compare RUN_A RUN_B")
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
