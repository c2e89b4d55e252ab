"""Train a ranker that orders recordings by sound-source angle, with the standard or the GHM loss.

    python train.py --frequency 1000hz --loss-type ghm --epochs 30
    python train.py --demo --frequency 1000hz --epochs 3

The entry point: parse the flags, train each frequency (fit, then evaluate the final model), print the table.
What a run trains with and its step live in training/loop.py, the flags in training/cli.py, checkpoints and
resume in training/state.py; README "How the code fits together" has the whole way.
"""

import sys
import time
import traceback
import warnings
from pathlib import Path

import torch
from torch import nn

import config
from config import RunConfig
from audio_data.classes import find_frequencies
from audio_data.loading import RunData
from audio_data.demo import ensure_demo_data
from models import check_input_size, checkpoint_model
from training.cli import get_args_parser, parse_args
from training.batch_hooks import BatchHooks
from training.named_runs import named_run, run_folder_name
from training.loop import Training, build_training, epoch_line, evaluate, run_data, stop_check, train_one_epoch
from training.state import RunState, add_calibration, save_checkpoint, start_run, training_checkpoint
from training.step_memory import check_step_memory
from utils import distributed, interrupt, run_log
from utils.checkpoints import load_checkpoint
from utils.common_utils import choose_algorithms, choose_device, set_seed
from utils.debugging_utils import verify_batch_consistency
from utils.errors import InputError, TrainingStopped
from analysis.evaluation import (ESTIMATE_HEADLINE, HEADLINE, estimate_headline, evaluate_recordings, headline,
                                 write_evaluation)
from analysis.baselines import VERSUS, comparison_lines, run_baselines, versus
from analysis.run_calibration import calibrate
from utils.history import early_stop_reason, monitor_best, plot_history, record_epoch, write_metrics
from utils.io_utils import save_pickle, save_text
from utils.memory import retain_freed_memory
from utils.phase_clock import CLOCK
from utils.run_paths import RunPaths, consistency_folder
from utils.run_log import RunLog
from utils.run_summary import Heartbeat, summary_record, write_summary

__all__ = ["get_args_parser", "main", "parse_args"]

# Settings that decide which batches training sees; --verify-consistency compares runs on these.
BATCH_ARGS = ("data_root", "material", "frequency", "seqs", "seed", "batch_size", "n_fft", "hop_length", "duration",
              "skip_bad_files")

# --profile's phases: (label, phase of the clock)
PROFILE = [("start-up", "start-up"), ("training steps", "train step"),
           ("loader and per-batch hooks", "training epoch - train step"), ("validation", "validation"),
           ("epoch outputs", "epoch outputs"), ("final evaluation", "final evaluation")]


def check_batches(cfg: RunConfig, run: RunPaths) -> None:
    """--verify-consistency on a loader of its own, so that training's random streams are untouched."""
    data = run_data(cfg)
    folder = consistency_folder(run.save_dir, cfg.data.material, cfg.data.frequency, cfg.loss.type)
    key_args = {key: value for key, value in cfg.flat().items() if key in BATCH_ARGS}
    print(verify_batch_consistency(data.train_loader, folder, run.timestamp, cfg.run.seed, key_args), flush=True)


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
    """evaluate.py's measures for the last and the best model (by --monitor) on the evaluation split (test when
    held out, else validation), each recording scored once, with the angle estimates of each model's calibration
    (fitted on the training recordings and then stored in its checkpoint) and the simple baselines beside them
    (analysis/baselines.py, fitted on the training recordings); reports in <run>/eval/ and, when the best model is
    not the last one, <run>/eval_best/.

    Returns {"split", "last", "best", "best_epoch"} ("best" None without a usable model_best.pt), or None if
    SIGINT/SIGTERM stopped it: the caller's agreed stop check then stops every process together.
    """
    split, indices = data.evaluation_split
    recordings, labels = data.recordings, data.recordings.labels[indices].numpy()
    paths, materials = [recordings.paths[i] for i in indices], [recordings.materials[i] for i in indices]
    last_at, best_at = history["epoch"][-1], monitor_best(history, cfg.optim.monitor)[1]
    models = [("last", model, run.evaluation, last_at, [run.checkpoint(last_at)])]
    if best_at == last_at:  # one model: evaluated once, its calibration stored in both checkpoints
        models[0][4].append(run.best_checkpoint)
    else:
        models.append(("best", best_model(cfg, run, best_at, device), run.evaluation_best, best_at,
                       [run.best_checkpoint]))
    report = {"split": split, "best_epoch": best_at, "last": None, "best": None}
    baselines, calibrations = run_baselines(recordings, data.split.train, indices, cfg.data), []
    for which, candidate, folder, epoch, checkpoints in models:
        if candidate is None:
            continue
        try:
            calibration = calibrate(candidate, recordings, data.split.train, device, between=interrupt.check)
            scores, metrics = evaluate_recordings(candidate, recordings.data[indices], labels, recordings.classes,
                                                  device, between=interrupt.check, materials=materials)
        except interrupt.TrainingInterrupted as exc:
            if exc.aborted:
                raise
            return None
        compared = versus(metrics, baselines)
        estimates = write_evaluation(folder, paths, labels, scores, metrics, recordings.classes,
                                     f"{run.name} ({which} model, {split})",
                                     {"split": split, "model": which, "epoch": epoch, **compared,
                                      "baselines": baselines}, materials, calibration)
        also = f", also the best by {cfg.optim.monitor}" if len(models) == 1 else ""
        print(f"{which} model (epoch {epoch}{also}) on the {split} recordings: {headline(metrics)}; "
              f"{estimate_headline(estimates)}", flush=True)
        report[which] = {**metrics, **{key: estimates[key] for key in ESTIMATE_HEADLINE}, **compared}
        calibrations += [(checkpoint, calibration) for checkpoint in checkpoints]
    print("\n".join(comparison_lines({f"CNN, {which} model": report[which] for which in ("last", "best")
                                      if report[which] is not None}, baselines)), flush=True)
    if best_at == last_at:
        report["best"] = report["last"]
    for checkpoint, calibration in calibrations:  # once every evaluation is done: a stop leaves them as they were
        add_calibration(checkpoint, calibration)
    return report


def fit(cfg: RunConfig, t: Training, data: RunData, device: torch.device, run: RunPaths, state: RunState,
        started: float) -> None:
    """The epochs after `state.epoch`: train, validate, schedule, record, checkpoint; until --epochs, or until
    --early-stop-patience ends the run (a resumed run that had stopped early trains no further).

    On SIGINT/SIGTERM the checkpoint of the last complete epoch is written before the run stops.
    """
    main_process = distributed.is_main()
    progress = cfg.run.progress and sys.stderr.isatty() and main_process
    heartbeat = Heartbeat(lambda: write_summary(run, cfg, state.history, "running", started)) if main_process else None
    hooks = BatchHooks(cfg, t, data, run, heartbeat, state.epoch)
    try:
        for epoch in range(state.epoch + 1, cfg.optim.epochs + 1):
            if state.epoch and early_stop_reason(state.history, cfg.optim):
                break
            epoch_started, hooks.epoch = time.perf_counter(), epoch
            try:
                stop_check(device)
                with CLOCK.phase("training epoch"):
                    train = train_one_epoch(t, data.train_loader, device, epoch, progress, hooks)
                with CLOCK.phase("validation"):
                    val = evaluate(t, data.val_loader, data.val_pairs, device, epoch, progress)
            except interrupt.TrainingInterrupted as exc:
                if not exc.aborted and main_process:
                    save_checkpoint(run.checkpoint(state.epoch), state.checkpoint)
                    save_pickle(state.history, run.history)
                raise
            t.scheduler.step(val["loss_main"])
            record_epoch(state.history, epoch, train, val)
            state.epoch, state.elapsed = epoch, time.time() - started
            if main_process:
                with CLOCK.phase("epoch outputs"):
                    state.checkpoint = training_checkpoint(t, state, data, run, train, val)
                    save_epoch(cfg, t, run, state, started, (train, val, time.perf_counter() - epoch_started))
                    hooks.end_epoch(train, val)
    finally:
        hooks.close()


def save_epoch(cfg: RunConfig, t: Training, run: RunPaths, state: RunState, started: float,
               figures: tuple[dict, dict, float]) -> None:
    """The main process's files after an epoch: model_best.pt when the monitor improved, the checkpoint when due
    (and when the run stops early), history, plot, summary, metrics.csv; then the epoch's line."""
    train, val, seconds = figures
    epoch, history = state.epoch, state.history
    improved = monitor_best(history, cfg.optim.monitor)[1] == epoch
    stopping = early_stop_reason(history, cfg.optim)
    if improved:
        save_checkpoint(run.best_checkpoint, state.checkpoint)
    if epoch % cfg.run.checkpoint_interval == 0 or epoch == cfg.optim.epochs or stopping:
        save_checkpoint(run.checkpoint(epoch), state.checkpoint)
    save_pickle(history, run.history)
    plot_history(history, run.history_plot, run.name)
    write_summary(run, cfg, history, "running", started)
    lr = t.optimizer.param_groups[0]["lr"]
    write_metrics(run.metrics, history, lr, seconds)
    print(epoch_line(epoch, cfg.optim.epochs, train, val, lr, seconds) + ("  (best)" if improved else ""),
          flush=True)
    if stopping:
        print(stopping, flush=True)


def describe(run: RunPaths, data: RunData, cfg: RunConfig, device: torch.device) -> str:
    shape = data.recordings.data.shape
    return (f"run {run.name}: {len(data.recordings)} recordings ({shape[2]}x{shape[3]} spectrograms), "
            f"{len(data.train_loader.dataset)} train / {len(data.val_loader.dataset)} val pairs, "
            f"batch {data.train_loader.batch_size}, device {device}"
            f"{' (--device auto)' if cfg.devices.device == 'auto' else ''}"
            f"{'' if cfg.devices.amp == 'off' else ', mixed precision ' + cfg.devices.amp}"
            f"{f', {distributed.world_size()} processes' if distributed.active() else ''}")


def train_frequency(cfg: RunConfig, device: torch.device, log: RunLog) -> dict:
    """One complete training run (or the rest of a resumed one) of `cfg.data.frequency`; returns its summary.

    Under torchrun every process trains; rank 0 alone writes files. What this thread prints goes to `log`, which
    becomes the run's train.log once the run folder exists.
    """
    if cfg.run.run_name and not cfg.run.resume:
        cfg, finished = named_run(cfg)
        if finished is not None:
            print(f"run {finished['run']} finished earlier ({finished['end_reason']}); not trained again: "
                  f"{finished['evaluation']['model']} model, pairwise accuracy "
                  f"{finished['evaluation']['pairwise_accuracy']:.3f} on the {finished['evaluation']['split']} "
                  "recordings", flush=True)
            return result_row(finished, cfg.data.frequency)
    CLOCK.reset()
    set_seed(cfg.run.seed)
    data = run_data(cfg, device)
    shape = tuple(data.recordings.data.shape[1:])
    check_input_size(cfg.model.name, shape)
    training = build_training(cfg, device)
    if not cfg.devices.skip_memory_check:
        check_step_memory(cfg.model, cfg.optim.batch_size, training.model, shape, len(data.split.train), device,
                          training.amp_dtype)
    run, state = start_run(cfg, training, data)
    started = time.time() - state.elapsed
    history = state.history
    main_process = distributed.is_main()
    if main_process:
        log.attach(run.log)
        save_text(config.to_yaml(cfg), run.config)
        write_summary(run, cfg, history, "running", started)
    print(describe(run, data, cfg, device), flush=True)
    try:
        if cfg.run.verify_consistency and not cfg.run.resume and main_process:
            check_batches(cfg, run)
        CLOCK.mark("start-up")
        fit(cfg, training, data, device, run, state, started)
        stop_check(device)
        with CLOCK.phase("final evaluation"):
            report = final_evaluation(cfg, training.model, data, device, run, history) if main_process else None
        report = distributed.broadcast_from_main(report)
        stop_check(device)
    except interrupt.TrainingInterrupted as exc:
        how = "aborted" if exc.aborted else f"stopped; the state after epoch {state.epoch} is saved"
        done = state.epoch == cfg.optim.epochs or early_stop_reason(history, cfg.optim)
        where = "the final evaluation" if done else f"epoch {state.epoch + 1}"
        note = f"{exc} in {where}: {how}. Resume with: python train.py --resume {run.checkpoints}"
        if main_process:
            write_summary(run, cfg, history, "interrupted", started, error=note)
            print(note, file=sys.stderr, flush=True)
        raise
    except Exception as exc:
        if main_process:
            write_summary(run, cfg, history, "failed", started, error=f"{type(exc).__name__}: {exc}")
        raise
    completed = write_summary if main_process else summary_record
    summary = completed(run, cfg, history, "completed", started, evaluation=evaluation_summary(report))
    row = result_row(summary, cfg.data.frequency)
    if cfg.run.profile and main_process:
        print(CLOCK.report(PROFILE), flush=True)
    return row


def result_row(summary: dict, frequency: str) -> dict:
    """The line of a run in the table that --frequency all prints."""
    return {"frequency": frequency, "status": "ok", "run": summary["run"],
            "epochs": summary["epochs_done"], "final_val_accuracy": summary["final"]["val_accuracy"],
            "best_val_accuracy": summary["best_val_accuracy"],
            **{key: summary["evaluation"][key] for key in HEADLINE}}


def evaluation_summary(report: dict) -> dict:
    """summary.json's evaluation: the chosen model's headline figures (the best model's, or the last model's
    without a usable model_best.pt), which model that is, and the last model's figures beside them."""
    chosen, keys = "best" if report["best"] is not None else "last", (*HEADLINE, *ESTIMATE_HEADLINE, *VERSUS)
    return {"split": report["split"], "model": chosen, "best_epoch": report["best_epoch"],
            **{key: report[chosen][key] for key in keys}, "last": {key: report["last"][key] for key in keys}}


def print_summary(results: list[dict]) -> None:
    print("\nfrequency  status  final val acc  best val acc  all-pairs acc  Kendall tau  run")
    for r in results:
        if r["status"] == "ok":
            print(f"{r['frequency']:<10} ok      {r['final_val_accuracy']:>12.3f}  {r['best_val_accuracy']:>12.3f}  "
                  f"{r['pairwise_accuracy']:>13.3f}  {r['kendall_tau_b']:>11.3f}  {r['run']}")
        else:
            print(f"{r['frequency']:<10} FAILED  {r['error']}")


def train_all(cfg: RunConfig, device: torch.device) -> int:
    data = cfg.data
    frequencies = (find_frequencies(Path(data.root), data.class_list, data.material.split(","))
                   if data.frequency == "all" else [data.frequency])
    results = []
    for frequency in frequencies:
        with run_log.capture() as log:
            try:
                run_name = cfg.run.run_name and run_folder_name(cfg.run.run_name, data.frequency, frequency)
                results.append(train_frequency(cfg.with_values(frequency=frequency, run_name=run_name), device, log))
            except (InputError, TrainingStopped) as exc:
                if distributed.is_main():
                    print(f"error: {exc}", file=sys.stderr)
                results.append({"frequency": frequency, "status": "failed", "error": str(exc)})
            except Exception as exc:  # an unexpected failure of one frequency must not stop the others
                if len(frequencies) == 1:
                    log.write(traceback.format_exc())  # the log keeps it; the interpreter prints it once
                    raise
                traceback.print_exc()
                results.append({"frequency": frequency, "status": "failed", "error": repr(exc)})
    if len(frequencies) > 1:
        print_summary(results)
    return 0 if all(r["status"] == "ok" for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
    cfg = parse_args(argv)
    retain_freed_memory()
    if cfg.devices.threads:
        torch.set_num_threads(cfg.devices.threads)
    device = choose_device(cfg.devices.device)
    choose_algorithms(device, cfg.devices.deterministic)
    if distributed.launched_by_torchrun():
        device = distributed.setup(device)
    try:
        if cfg.data.demo and distributed.is_main():
            ensure_demo_data(cfg.data.root, cfg.data.demo)
        distributed.broadcast_from_main(None)  # the others wait for the demo data
        with interrupt.stop_on_signals():
            return train_all(cfg, device)
    except interrupt.TrainingInterrupted as exc:
        return exc.exit_code
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
