"""--folds K: a run per fold (each testing on its fold, choosing its model on the rest's validation split), then
the folds summary: every fold's measures, the CNN against the best baseline on the same fold and against the one
baseline best over the folds, and the mean and standard deviation of each over the folds, in
`<save-dir>/folds/<name>/folds_summary.{json,csv}`."""

import csv
import math
import statistics
from pathlib import Path

from config import RunConfig
from training.named_runs import run_folder_name
from utils.io_utils import atomic_path, save_json
from utils.run_paths import CHECKPOINTS, folds_folder, now, run_name_prefix
from utils.run_summary import read_summary

FOLDS_FORMAT = 1
MEASURES = ("pairwise_accuracy", "kendall_tau_b", "spearman_rho", "class_accuracy", "mean_abs_angle_error_deg",
            "best_baseline_pairwise_accuracy", "best_baseline_kendall_tau_b", "vs_best_baseline",
            "baseline_part_pairwise_accuracy", "residual_share")  # the last two: --model baseline_residual's
RUN_MEASURES = ("best_val_accuracy", "epochs_done")
# a fold's row: its run's evaluation, with the evaluated model's epoch (0: a baseline-residual model's untrained
# baseline), and the run's measures
EVALUATION_MEASURES = (*MEASURES, "best_epoch")
# the baseline chosen once for the fold set (`with_baseline_over_folds`) on each fold, and the CNN's margin over it
OVER_FOLDS = ("best_baseline_over_folds_pairwise_accuracy", "vs_best_baseline_over_folds")
ROW_MEASURES = (*EVALUATION_MEASURES, *OVER_FOLDS, *RUN_MEASURES)
BASELINES = "baselines_pairwise_accuracy"  # every baseline's all-pairs accuracy on the fold (json only)


def fold_configs(cfg: RunConfig, frequency: str) -> list[RunConfig]:
    """The runs of one frequency: one, or one per fold of --folds (--fold's alone when given)."""
    data, name = cfg.data, cfg.run.run_name
    folds = [data.fold] if data.fold else range(1, data.folds + 1) if data.folds else [None]
    return [cfg.with_values(frequency=frequency, fold=fold,
                            run_name=name and run_folder_name(name, data.frequency, frequency, fold))
            for fold in folds]


def fold_row(save_dir: str, run: str | None, fold: int) -> dict:
    """A fold's line of the summary, from its run's summary.json (its status alone if it did not complete)."""
    if run is None:
        return {"fold": fold, "run": None, "status": "failed"}
    summary = read_summary(Path(save_dir) / CHECKPOINTS / run / "summary.json")
    evaluation = summary.get("evaluation") or {}
    row = {"fold": fold, "run": run, "status": summary["status"], "split": evaluation.get("split"),
           "best_baseline": evaluation.get("best_baseline"),
           **{key: evaluation.get(key) for key in EVALUATION_MEASURES},
           **{key: summary.get(key) for key in RUN_MEASURES}, BASELINES: evaluation.get(BASELINES)}
    if "per_subset" in evaluation:  # a run that pools subsets: each one's measures
        row["per_subset"] = {name: {key: figures.get(key) for key in ("best_baseline", *MEASURES, BASELINES)}
                             for name, figures in evaluation["per_subset"].items()}
    return row


def with_baseline_over_folds(rows: list[dict]) -> str | None:
    """Choose the baseline whose mean all-pairs accuracy over the folds `rows` is highest (one choice for the fold
    set, where each row's best_baseline is chosen on its own fold, a maximum of noisy figures that sits at or above
    every single baseline's mean), add OVER_FOLDS to each row and return its name; None when the rows do not
    carry every baseline's accuracy (runs from before they did)."""
    folds = [row.get(BASELINES) for row in rows]
    if not folds or None in folds:
        return None
    means = {name: statistics.mean(fold[name] for fold in folds) for name in folds[0]
             if all(isinstance(fold.get(name), (int, float)) and math.isfinite(fold[name]) for fold in folds)}
    if not means:
        return None
    name = max(means, key=means.get)
    for row in rows:
        row[OVER_FOLDS[0]] = row[BASELINES][name]
        row[OVER_FOLDS[1]] = row["pairwise_accuracy"] - row[BASELINES][name]
    return name


def spread(rows: list[dict], key: str) -> dict:
    values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
    return {"mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None, "folds": len(values)}


def write_folds_summary(cfg: RunConfig, frequency: str, runs: dict[int, str | None]) -> str:
    """folds_summary.json and .csv of the folds `runs` (fold → run folder name, None for a fold that failed);
    the mean and spread over the completed folds (and over each subset's figures, in a run that pools several).
    Returns the lines to print."""
    name = (run_folder_name(cfg.run.run_name, cfg.data.frequency, frequency) if cfg.run.run_name else
            f"{run_name_prefix(cfg.data.material, frequency, cfg.loss.type, cfg.loss.alpha, cfg.run.seed)}"
            f"_folds{cfg.data.folds}_{now()}")
    folder = folds_folder(cfg.run.save_dir, name)
    rows = [fold_row(cfg.run.save_dir, run, fold) for fold, run in runs.items()]
    done = [row for row in rows if row["status"] == "completed"]
    over = over_folds(done, ROW_MEASURES)
    summary = {"format_version": FOLDS_FORMAT, "folds": cfg.data.folds, "frequency": frequency,
               "completed": len(done), "best_baseline_over_folds": over["best_baseline_over_folds"],
               "per_fold": rows, "over_folds": {key: over[key] for key in ROW_MEASURES}}
    if subsets := list(done[0].get("per_subset", {})) if done else []:
        summary["over_folds_per_subset"] = {name: over_folds([row["per_subset"][name] for row in done],
                                                             (*MEASURES, *OVER_FOLDS)) for name in subsets}
    save_json(summary, folder / "folds_summary.json")
    columns = ["fold", "run", "status", "split", "best_baseline", *ROW_MEASURES]
    rows = [{key: value for key, value in row.items() if key not in ("per_subset", BASELINES)} for row in rows]
    with atomic_path(folder / "folds_summary.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
        for stat in ("mean", "std"):
            writer.writerow({"fold": stat, **{key: summary["over_folds"][key][stat] for key in ROW_MEASURES}})
    return "\n".join([f"{len(done)}/{len(rows)} folds of {frequency}: {versus_line(over)}; wrote "
                      f"{folder / 'folds_summary.json'}",
                      *(f"  {name}: {versus_line(figures)}"
                        for name, figures in summary.get("over_folds_per_subset", {}).items())])


def over_folds(rows: list[dict], keys: tuple[str, ...]) -> dict:
    """The completed folds `rows` (a fold set's, or one pooled subset's) over the folds: the baseline chosen over
    them and the spread of each of `keys`."""
    chosen = with_baseline_over_folds(rows)  # first: it adds OVER_FOLDS to the rows
    return {"best_baseline_over_folds": chosen, **{key: spread(rows, key) for key in keys}}


def versus_line(over: dict) -> str:
    line = (f"pairwise accuracy {shown(over['pairwise_accuracy'])}, best baseline "
            f"{shown(over['best_baseline_pairwise_accuracy'])}, CNN − best baseline {shown(over['vs_best_baseline'])}")
    if over["best_baseline_over_folds"] is None:
        return line
    return (f"{line}; best baseline over the folds ({over['best_baseline_over_folds']}) "
            f"{shown(over[OVER_FOLDS[0]])}, CNN − it {shown(over[OVER_FOLDS[1]])}")


def shown(figure: dict) -> str:
    return "-" if figure["mean"] is None else f"{figure['mean']:.3f} ± {figure['std']:.3f}"
