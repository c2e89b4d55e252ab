"""A run's final evaluation: its last model and its best (by --monitor) on the evaluation split (test when held
out, else validation), each with the calibration fitted on the training recordings (then stored in its checkpoint)
and the simple baselines beside them, through analysis/evaluation.py's `evaluate_model`; reports in <run>/eval/
and, when the best model is not the last one, <run>/eval_best/."""

import warnings

import torch
from torch import nn

from analysis.baseline_rankers import run_baselines
from analysis.evaluation import (ESTIMATE_HEADLINE, HEADLINE, RESIDUAL, VERSUS, Recordings, comparison_lines,
                                 estimate_headline, evaluate_model, headline, subset_lines)
from analysis.report import write_report
from analysis.run_calibration import calibrate
from audio_data.loading import RunData
from config import RunConfig
from models import checkpoint_model
from training.state import add_calibration
from utils import interrupt
from utils.checkpoints import load_checkpoint
from utils.errors import InputError
from utils.history import monitor_best
from utils.run_paths import RunPaths


def best_model(cfg: RunConfig, run: RunPaths, best_at: int, device: torch.device) -> nn.Module | None:
    """model_best.pt's model; None with a warning if it is missing or not from the history's best epoch (a run
    killed between its checkpoints and resumed differently)."""
    try:
        checkpoint = load_checkpoint(run.best_checkpoint, "model_best.pt", ("model_state_dict", "epoch", "args"))
    except InputError as exc:
        warnings.warn(f"{exc}; the final evaluation reports the last model only")
        return None
    if checkpoint["epoch"] != best_at:
        warnings.warn(f"{run.best_checkpoint} is from epoch {checkpoint['epoch']}, but the history's best epoch is "
                      f"{best_at}; the final evaluation reports the last model only")
        return None
    return checkpoint_model(checkpoint, cfg.model.name, run.best_checkpoint, device)


def final_evaluation(cfg: RunConfig, model: nn.Module, data: RunData, device: torch.device, run: RunPaths,
                     history: dict) -> dict | None:
    """Returns {"split", "last", "best", "best_epoch"} (each model's headline figures; "best" None without a
    usable model_best.pt), or None if SIGINT/SIGTERM stopped it: the caller's agreed stop check then stops every
    process together."""
    split, indices = data.evaluation_split
    recordings = Recordings.of(data.recordings, indices)
    last_at, best_at = history["epoch"][-1], monitor_best(history, cfg.optim.monitor)[1]
    models = [("last", model, run.evaluation, last_at, [run.checkpoint(last_at)])]
    if best_at == last_at:  # one model: evaluated once, its calibration stored in both checkpoints
        models[0][4].append(run.best_checkpoint)
    else:
        models.append(("best", best_model(cfg, run, best_at, device), run.evaluation_best, best_at,
                       [run.best_checkpoint]))
    report = {"split": split, "best_epoch": best_at, "last": None, "best": None}
    baselines, calibrations = run_baselines(data.recordings, data.split.train, indices), []
    for which, candidate, folder, epoch, checkpoints in models:
        if candidate is None:
            continue
        try:
            calibration = calibrate(candidate, data.recordings, data.split.train, device, between=interrupt.check)
            result = evaluate_model(candidate, recordings, device, calibration, f"{run.name} ({which} model, {split})",
                                    baselines, {"split": split, "model": which, "epoch": epoch},
                                    between=interrupt.check)
        except interrupt.TrainingInterrupted as exc:
            if exc.aborted:
                raise
            return None
        write_report(result, folder)
        also = f", also the best by {cfg.optim.monitor}" if len(models) == 1 else ""
        print(f"{which} model (epoch {epoch}{also}) on the {split} recordings: {headline(result.metrics)}; "
              f"{estimate_headline(result.estimates)}", *subset_lines(result.metrics), sep="\n", flush=True)
        report[which] = result.figures()
        calibrations += [(checkpoint, calibration) for checkpoint in checkpoints]
    print("\n".join(comparison_lines({f"CNN, {which} model": report[which] for which in ("last", "best")
                                      if report[which] is not None}, baselines)), flush=True)
    if best_at == last_at:
        report["best"] = report["last"]
    for checkpoint, calibration in calibrations:  # once every evaluation is done: a stop leaves them as they were
        add_calibration(checkpoint, calibration)
    return report


def evaluation_summary(report: dict) -> dict:
    """summary.json's evaluation: the chosen model's headline figures (the best model's, or the last model's
    without a usable model_best.pt), which model that is, and the last model's figures beside them."""
    chosen, keys = "best" if report["best"] is not None else "last", (*HEADLINE, *ESTIMATE_HEADLINE, *VERSUS,
                                                                      *RESIDUAL, "per_subset")
    return {"split": report["split"], "model": chosen, "best_epoch": report["best_epoch"],
            **{key: report[chosen][key] for key in keys if key in report[chosen]},
            "last": {key: report["last"][key] for key in keys if key in report["last"]}}
