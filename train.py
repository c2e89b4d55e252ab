"""Train a ranker that orders recordings by sound-source angle, with the standard or the GHM loss.

    python train.py --frequency 1000hz --loss-type ghm --epochs 30
    python train.py --demo --frequency 1000hz --epochs 3

The entry point: parse the flags (training/cli.py), train each frequency (set up in training/run.py, the epochs in
training/fit.py, then the final evaluation in training/final_evaluation.py), print the table. docs/architecture.md
has the whole way.
"""

import signal
import sys
import traceback
import warnings
from contextlib import ExitStack

import torch

from audio_data.loading import data_frequencies
from audio_data.demo import ensure_demo_data
from config import RunConfig
from training import run as run_setup
from training.cli import get_args_parser, parse_args
from training.final_evaluation import evaluation_summary, final_evaluation
from training.callbacks import Fit
from training.fit import fit
from training.loop import stop_check
from training.folds import fold_configs, write_folds_summary
from training.named_runs import existing_run_folder, named_run, requeue_job
from utils import distributed, interrupt, run_log, slurm
from utils.common_utils import choose_algorithms, choose_device
from utils.errors import InputError, TrainingStopped
from utils.history import early_stop_reason
from utils.memory import retain_freed_memory
from utils.phase_clock import CLOCK
from utils.run_lock import RunLock
from utils.run_log import RunLog

__all__ = ["get_args_parser", "main", "parse_args"]

# --profile's phases: (label, phase of the clock)
PROFILE = [("start-up", "start-up"), ("training steps", "train step"),
           ("loader and per-batch hooks", "training epoch - train step"), ("validation", "validation"),
           ("epoch outputs", "epoch outputs"), ("final evaluation", "final evaluation")]


def train_and_evaluate(f: Fit) -> dict:
    """Fit, then the final evaluation (main process; the others get its report). On SIGINT/SIGTERM the run's
    summary says where it stopped and how to resume; on any other failure, that it failed."""
    cfg, state, main_process = f.cfg, f.state, distributed.is_main()
    try:
        if cfg.run.verify_consistency and not cfg.run.resume and main_process:
            run_setup.check_batches(cfg, f.run)
        CLOCK.mark("start-up")
        fit(f)
        stop_check(f.device)
        with CLOCK.phase("final evaluation"):
            report = final_evaluation(cfg, f.t.model, f.data, f.device, f.run, state.history) if main_process else None
        report = distributed.broadcast_from_main(report)
        stop_check(f.device)
        f.call("on_run_end", "completed", evaluation_summary(report))
    except interrupt.TrainingInterrupted as exc:
        how = "aborted" if exc.aborted else f"stopped; the state after epoch {state.epoch} is saved"
        done = state.epoch == cfg.optim.epochs or early_stop_reason(state.history, cfg.optim)
        where = "the final evaluation" if done else f"epoch {state.epoch + 1}"
        note = f"{exc} in {where}: {how}. Resume with: python train.py --resume {f.run.checkpoints}"
        if main_process:
            f.summary.write(state.history, "interrupted", error=note)
            print(note, file=sys.stderr, flush=True)
        f.call("on_run_end", "interrupted", None)
        raise
    except Exception as exc:
        if main_process:
            f.summary.write(state.history, "failed", error=f"{type(exc).__name__}: {exc}")
        f.call("on_run_end", "failed", None)
        raise
    return report


def train_frequency(cfg: RunConfig, device: torch.device, log: RunLog) -> dict:
    """One complete training run (or the rest of a resumed one) of `cfg.data.frequency`; returns its table row.

    Under torchrun every process trains; rank 0 alone writes files. What this thread prints goes to `log`, which
    becomes the run's train.log once the run folder exists.
    """
    with ExitStack() as lock:  # one process per run folder: a named or resumed run's before it is read
        if distributed.is_main() and (folder := existing_run_folder(cfg)) is not None:
            lock.enter_context(RunLock(folder))
        if cfg.run.run_name and not cfg.run.resume:
            cfg, finished = named_run(cfg)
            if finished is not None:
                evaluation = finished["evaluation"]
                print(f"run {finished['run']} finished earlier ({finished['end_reason']}); not trained again: "
                      f"{evaluation['model']} model, pairwise accuracy {evaluation['pairwise_accuracy']:.3f} on the "
                      f"{evaluation['split']} recordings", flush=True)
                return result_row(finished, cfg.data.frequency)
        CLOCK.reset()
        f = run_setup.start(cfg, device, log)
        if distributed.is_main() and folder is None:  # a new run's folder, made just now
            lock.enter_context(RunLock(f.run.checkpoints))
        report = train_and_evaluate(f)
        write = f.summary.write if distributed.is_main() else f.summary.record
        summary = write(f.state.history, "completed", evaluation=evaluation_summary(report))
    row = result_row(summary, cfg.data.frequency)
    if cfg.run.profile and distributed.is_main():
        print(CLOCK.report(PROFILE), flush=True)
    return row


def result_row(summary: dict, frequency: str) -> dict:
    """The line of a run in the table that --frequency all prints."""
    return {"frequency": frequency, "status": "ok", "run": summary["run"], "epochs": summary["epochs_done"],
            "final_val_accuracy": summary["final"]["val_accuracy"], "best_val_accuracy": summary["best_val_accuracy"],
            "pairwise_accuracy": summary["evaluation"]["pairwise_accuracy"],
            "kendall_tau_b": summary["evaluation"]["kendall_tau_b"]}


def print_summary(results: list[dict]) -> None:
    print("\nfrequency  status  final val acc  best val acc  all-pairs acc  Kendall tau  run")
    for r in results:
        if r["status"] == "ok":
            print(f"{r['frequency']:<10} ok      {r['final_val_accuracy']:>12.3f}  {r['best_val_accuracy']:>12.3f}  "
                  f"{r['pairwise_accuracy']:>13.3f}  {r['kendall_tau_b']:>11.3f}  {r['run']}")
        else:
            print(f"{r['frequency']:<10} FAILED  {r['error']}")


def train_one(cfg: RunConfig, device: torch.device, single: bool) -> dict:
    """One run of train_all's: its table row, or a failed one (an unexpected failure re-raised when it is the only
    run, so that the interpreter prints it once)."""
    row = {"frequency": cfg.data.frequency + (f" fold {cfg.data.fold}" if cfg.data.fold else ""), "status": "failed"}
    with run_log.capture() as log:
        try:
            return {**train_frequency(cfg, device, log), "frequency": row["frequency"]}
        except (InputError, TrainingStopped) as exc:
            if distributed.is_main():
                print(f"error: {exc}", file=sys.stderr)
            return {**row, "error": str(exc)}
        except Exception as exc:  # an unexpected failure of one run must not stop the others
            if single:
                log.write(traceback.format_exc())  # the log keeps it; the interpreter prints it once
                raise
            traceback.print_exc()
            return {**row, "error": repr(exc)}


def train_all(cfg: RunConfig, device: torch.device) -> int:
    data = cfg.data
    frequencies = data_frequencies(data) if data.frequency == "all" else [data.frequency]
    results = []
    for frequency in frequencies:
        runs = fold_configs(cfg, frequency)
        for run_cfg in runs:
            results.append(train_one(run_cfg, device, single=len(frequencies) * len(runs) == 1))
        if data.folds and not data.fold and distributed.is_main():
            folds = {run_cfg.data.fold: row.get("run") for run_cfg, row in zip(runs, results[-len(runs):])}
            print(write_folds_summary(cfg, frequency, folds), flush=True)
    if len(results) > 1:
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
        # SLURM's warning before the time limit; under torchrun it reaches the launcher, not the ranks
        usr1 = slurm.job_id() is not None and not distributed.launched_by_torchrun()
        with interrupt.stop_on_signals(usr1):
            return train_all(cfg, device)
    except InputError as exc:  # the demo data could not be written
        print(f"error: --demo {cfg.data.demo}: {exc}", file=sys.stderr)
        return 1
    except interrupt.TrainingInterrupted as exc:
        if exc.signum == signal.SIGUSR1 and not exc.aborted:
            return requeue_job(cfg, exc.exit_code)
        return exc.exit_code
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
