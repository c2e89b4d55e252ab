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

import torch
from torch import nn

import config
from datasets.loading import RunData, build_data
from datasets.synthetic import ensure_demo_data
from models import check_input_size
from training.cli import get_args_parser, parse_args
from training.ghm_recorder import GHMStatsRecorder
from training.loop import Training, build_training, epoch_line, evaluate, stop_check, train_one_epoch
from training.state import RunState, save_checkpoint, start_run, training_checkpoint
from utils import distributed, interrupt, run_log
from utils.common_utils import choose_device, set_seed
from utils.debugging_utils import verify_batch_consistency
from utils.errors import InputError, TrainingStopped
from analysis.evaluation import evaluate_recordings, headline, write_evaluation
from utils.history import best_epoch, plot_history, record_epoch, write_metrics
from utils.io_utils import save_pickle, save_yaml
from utils.memory import retain_freed_memory
from utils.run_paths import RunPaths, consistency_folder
from utils.run_log import RunLog
from utils.run_summary import Heartbeat, write_summary

__all__ = ["get_args_parser", "main", "parse_args"]

# Arguments that decide which batches training sees; --verify-consistency compares runs on these.
BATCH_ARGS = ("data_root", "material", "frequency", "seqs", "seed", "batch_size", "n_fft", "hop_length", "duration",
              "skip_bad_files")


def check_batches(run_args: dict, run: RunPaths) -> None:
    """--verify-consistency on a loader of its own, so that training's random streams are untouched."""
    data = build_data(run_args, run_args["frequency"])
    folder = consistency_folder(run.save_dir, run_args["material"], run_args["frequency"], run_args["loss_type"])
    key_args = {key: run_args[key] for key in BATCH_ARGS}
    print(verify_batch_consistency(data.train_loader, folder, run.timestamp, run_args["seed"], key_args), flush=True)


def final_evaluation(model: nn.Module, data: RunData, device: torch.device, run: RunPaths) -> dict | None:
    """evaluate.py's measures on the validation recordings, each scored once; report in <run>/eval/.

    None if SIGINT/SIGTERM stopped it: the caller's agreed stop check then stops every process together.
    """
    recordings, indices = data.recordings, data.val_indices
    labels = recordings.labels[indices].numpy()
    try:
        scores, metrics = evaluate_recordings(model, recordings.data[indices], labels, recordings.classes, device,
                                              between=interrupt.check)
    except interrupt.TrainingInterrupted as exc:
        if exc.aborted:
            raise
        return None
    write_evaluation(run.evaluation, data.val_paths, labels, scores, metrics, recordings.classes,
                     f"{run.name} (validation)", {"split": "val", "epoch": "final"})
    print(f"final model on the validation recordings: {headline(metrics)}", flush=True)
    return metrics


def fit(run_args: dict, t: Training, data: RunData, device: torch.device, run: RunPaths, state: RunState,
        started: float) -> None:
    """The epochs after `state.epoch`: train, validate, schedule, record, checkpoint.

    On SIGINT/SIGTERM the checkpoint of the last complete epoch is written before the run stops.
    """
    main_process = distributed.is_main()
    progress = not run_args["no_progress"] and sys.stderr.isatty() and main_process
    recorder = (GHMStatsRecorder(t.losses, run_args["loss_type"], run_args["ghm_stats_batches"], data.recordings,
                                 run) if t.losses.ghm else None)
    heartbeat = Heartbeat(lambda: write_summary(run, state.history, "running", started)) if main_process else None

    def on_batch(*step) -> None:
        if recorder is not None:
            recorder(*step)
        if heartbeat is not None:
            heartbeat()
    for epoch in range(state.epoch + 1, run_args["epochs"] + 1):
        epoch_started = time.perf_counter()
        if recorder is not None:
            recorder.epoch = epoch
        try:
            stop_check(device)
            train = train_one_epoch(t, data.train_loader, device, epoch, progress, on_batch)
            val = evaluate(t, data.val_loader, device, epoch, progress)
        except interrupt.TrainingInterrupted as exc:
            if not exc.aborted and main_process:
                save_checkpoint(run.checkpoint(state.epoch), state.checkpoint)
                save_pickle(state.history, run.history)
            raise
        t.scheduler.step(val["loss_main"])
        record_epoch(state.history, epoch, train, val)
        state.epoch, state.elapsed = epoch, time.time() - started
        if not main_process:
            continue
        state.checkpoint = training_checkpoint(t, state, data, run, train, val)
        save_pickle(state.history, run.history)
        plot_history(state.history, run.history_plot, run.name)
        if epoch % run_args["checkpoint_interval"] == 0 or epoch == run_args["epochs"]:
            save_checkpoint(run.checkpoint(epoch), state.checkpoint)
        write_summary(run, state.history, "running", started)
        lr, seconds = t.optimizer.param_groups[0]["lr"], time.perf_counter() - epoch_started
        write_metrics(run.metrics, state.history, lr, seconds)
        print(epoch_line(epoch, run_args["epochs"], train, val, lr, seconds), flush=True)


def describe(run: RunPaths, data: RunData, run_args: dict, device: torch.device) -> str:
    shape = data.recordings.data.shape
    return (f"run {run.name}: {len(data.recordings)} recordings ({shape[2]}x{shape[3]} spectrograms), "
            f"{len(data.train_loader.dataset)} train / {len(data.val_loader.dataset)} val pairs, "
            f"batch {data.train_loader.batch_size}, device {device}"
            f"{' (--device auto)' if run_args['device'] == 'auto' else ''}"
            f"{'' if run_args['amp'] == 'off' else ', mixed precision ' + run_args['amp']}"
            f"{f', {distributed.world_size()} processes' if distributed.active() else ''}")


def train_frequency(run_args: dict, device: torch.device, log: RunLog) -> dict:
    """One complete training run (or the rest of a resumed one) of `run_args["frequency"]`; returns its summary.

    Under torchrun every process trains; rank 0 alone writes files. What this thread prints goes to `log`, which
    becomes the run's train.log once the run folder exists.
    """
    set_seed(run_args["seed"])
    data = build_data(run_args, run_args["frequency"])
    check_input_size(run_args["model"], tuple(data.recordings.data.shape[1:]))
    training = build_training(run_args, device)
    run, state = start_run(run_args, training, data)
    started = time.time() - state.elapsed
    history = state.history
    main_process = distributed.is_main()
    if main_process:
        log.attach(run.log)
        save_yaml(run_args, run.config)
        write_summary(run, history, "running", started)
    print(describe(run, data, run_args, device), flush=True)
    try:
        if run_args["verify_consistency"] and not run_args["resume"] and main_process:
            check_batches(run_args, run)
        fit(run_args, training, data, device, run, state, started)
        stop_check(device)
        metrics = final_evaluation(training.model, data, device, run) if main_process else None
        metrics = distributed.broadcast_from_main(metrics)
        stop_check(device)
    except interrupt.TrainingInterrupted as exc:
        how = "aborted" if exc.aborted else f"stopped; the state after epoch {state.epoch} is saved"
        where = "the final evaluation" if state.epoch == run_args["epochs"] else f"epoch {state.epoch + 1}"
        note = f"{exc} in {where}: {how}. Resume with: python train.py --resume {run.checkpoints}"
        if main_process:
            write_summary(run, history, "interrupted", started, error=note)
            print(note, file=sys.stderr, flush=True)
        raise
    except Exception as exc:
        if main_process:
            write_summary(run, history, "failed", started, error=f"{type(exc).__name__}: {exc}")
        raise
    headline_metrics = {key: metrics[key] for key in ("pairwise_accuracy", "kendall_tau_b", "spearman_rho")}
    if main_process:
        write_summary(run, history, "completed", started, evaluation=headline_metrics)
    return {"frequency": run_args["frequency"], "status": "ok", "run": run.name, "epochs": run_args["epochs"],
            "final_val_accuracy": history["val_accuracy"][-1],
            "best_val_accuracy": best_epoch(history["val_accuracy"])[0], **headline_metrics}


def print_summary(results: list[dict]) -> None:
    print("\nfrequency  status  final val acc  best val acc  all-pairs acc  Kendall tau  run")
    for r in results:
        if r["status"] == "ok":
            print(f"{r['frequency']:<10} ok      {r['final_val_accuracy']:>12.3f}  {r['best_val_accuracy']:>12.3f}  "
                  f"{r['pairwise_accuracy']:>13.3f}  {r['kendall_tau_b']:>11.3f}  {r['run']}")
        else:
            print(f"{r['frequency']:<10} FAILED  {r['error']}")


def train_all(args, device: torch.device) -> int:
    frequencies = config.FREQUENCIES if args.frequency == "all" else [args.frequency]
    results = []
    for frequency in frequencies:
        with run_log.capture() as log:
            try:
                results.append(train_frequency({**vars(args), "frequency": frequency}, device, log))
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
    args = parse_args(argv)
    retain_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    if distributed.launched_by_torchrun():
        device = distributed.setup(device)
    try:
        if args.demo and distributed.is_main():
            ensure_demo_data(args.data_root)
        distributed.broadcast_from_main(None)  # the others wait for the demo data
        with interrupt.stop_on_signals():
            return train_all(args, device)
    except interrupt.TrainingInterrupted as exc:
        return exc.exit_code
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    sys.exit(main())
