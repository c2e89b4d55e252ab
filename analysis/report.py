"""Writing an evaluation (analysis/evaluation.py's Report): the one writer of metrics.json, the per-recording table
(scores.csv, or predict.py's predictions CSV) and the plots."""

import csv
import math
from pathlib import Path

import numpy as np

from analysis.evaluation import Report
from utils.errors import InputError
from utils.io_utils import atomic_path, save_json
from utils.plotting import save_figure, subplots


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


ESTIMATE_COLUMNS = ["score", "estimated_class", "estimated_angle_deg", "confidence"]


def table_header(labelled: bool, extra: list[str] = ()) -> list[str]:
    """scores.csv's or predict.py's columns; a manifest's own columns come last (`manifest_<name>` where a name is
    one of ours)."""
    ours = ["path", *(["class", "material"] if labelled else []), *ESTIMATE_COLUMNS]
    return ours + [f"manifest_{name}" if name in ours else name for name in extra]


def check_table_output(path: Path, inputs: list[Path], overwrite: bool, flag: str = "--out") -> None:
    """InputError unless `path` may receive an unlabelled table (predict.py's CSV): never one of the command's
    inputs, never a folder; an existing file only if it is such a table written earlier, or with `overwrite`."""
    target = path.resolve()
    if any(target == p.resolve() for p in inputs):
        raise InputError(f"{flag} {path}: is an input of this command; the output would replace it")
    if not path.exists():
        return
    if not path.is_file():
        raise InputError(f"{flag} {path}: not a regular file")
    if overwrite:
        return
    try:  # a regular file (checked above): its first line only
        with open(path, "rb") as f:
            first = f.readline(4096).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        first = None
    if first is None or not first.startswith(",".join(table_header(False))):
        raise InputError(f"{flag} {path}: exists and is not a table this program wrote; give --overwrite to "
                         "replace it")


def write_table(report: Report, path: Path) -> None:
    """One row per recording: path, (labelled: class and material,) score and the angle estimate, and a manifest's
    own columns."""
    recordings, guess, classes = report.recordings, report.guess, report.recordings.classes
    labelled = recordings.labels is not None
    materials = recordings.materials or [""] * len(recordings.paths)
    extra = recordings.extra or [{} for _ in recordings.paths]
    columns = list(dict.fromkeys(name for row in extra for name in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table_header(labelled, columns))
        for i, recording in enumerate(recordings.paths):
            known = [classes[recordings.labels[i]], materials[i]] if labelled else []
            writer.writerow([recording, *known, f"{report.scores[i]:.9g}", classes[guess["class"][i]],
                             f"{guess['angle'][i]:.4g}", f"{guess['confidence'][i]:.4f}",
                             *(extra[i].get(name, "") for name in columns)])


def write_report(report: Report, out: Path) -> None:
    """A labelled evaluation into folder `out`: metrics.json (what was evaluated, the comparison with the
    baselines, the ranking measures and the estimates' accuracy under `estimate`), scores.csv and the plots."""
    out, classes, title = Path(out), report.recordings.classes, report.title
    baselines = {} if report.baselines is None else {"baselines": report.baselines}
    save_json(plain_json({**report.about, **report.versus, **baselines, **report.metrics,
                          "estimate": report.estimates}), out / "metrics.json")
    write_table(report, out / "scores.csv")
    plot_scores_by_class(report.scores, report.recordings.labels, classes, out / "scores_by_class.png",
                         f"Scores by class: {title}")
    plot_pair_accuracy(np.array(report.metrics["class_pair_accuracy"], dtype=float), classes,
                       out / "pair_accuracy.png", f"Pairs ordered correctly: {title}")
    plot_confusion(np.array(report.estimates["confusion"]), classes, out / "confusion.png", f"Estimated class: {title}")
