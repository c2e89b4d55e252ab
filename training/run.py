"""Setting up one run: its data, what it trains with, its folder (new, named or resumed) and its first files."""

import time

import torch

import config
from audio_data.classes import class_table
from audio_data.loading import RunData
from config import Exclusions, RunConfig
from models import check_input_size
from models.common import reads_features
from training.callbacks import Fit
from training.fit import run_callbacks
from training.loop import build_training, run_data
from training.state import start_run
from training.step_memory import check_step_memory
from utils import distributed
from utils.common_utils import set_seed
from utils.debugging_utils import verify_batch_consistency
from utils.io_utils import save_text
from utils.plotting import BackgroundFigures
from utils.run_log import RunLog
from utils.run_paths import RunPaths, consistency_folder
from utils.run_summary import RunSummary

# Settings that decide which batches training sees; --verify-consistency compares runs on these.
BATCH_SETTINGS = ("data_root", "material", "frequency", "pair_scope", "seqs", "seed", "batch_size", "n_fft",
                  "hop_length", "duration", "skip_bad_files")


def describe(run: RunPaths, data: RunData, cfg: RunConfig, device: torch.device) -> str:
    shape = data.recordings.data.shape
    return (f"run {run.name}: {len(data.recordings)} recordings ({shape[2]}x{shape[3]} spectrograms), "
            f"{len(data.train_loader.dataset)} train / {len(data.val_loader.dataset)} val pairs, "
            f"batch {data.train_loader.batch_size}, device {device}"
            f"{' (--device auto)' if cfg.devices.device == 'auto' else ''}"
            f"{'' if cfg.devices.amp == 'off' else ', mixed precision ' + cfg.devices.amp}"
            f"{f', {distributed.world_size()} processes' if distributed.active() else ''}")


def check_batches(cfg: RunConfig, run: RunPaths) -> None:
    """--verify-consistency on a loader of its own, so that training's random streams are untouched."""
    data = run_data(cfg)
    folder = consistency_folder(run.save_dir, cfg.data.material, cfg.data.frequency, cfg.loss.type)
    key_args = {key: value for key, value in cfg.flat().items() if key in BATCH_SETTINGS}
    print(verify_batch_consistency(data.train_loader, folder, run.timestamp, cfg.run.seed, key_args), flush=True)


def kept_exclusions(cfg: RunConfig, data: RunData) -> RunConfig:
    """The configuration with only the --exclude-recordings entries that named a recording of the run (the
    list's hash stays): what the run stores, however long the list given."""
    exclusions = cfg.data.exclude_recordings
    if not exclusions:
        return cfg
    return cfg.with_values(exclude_recordings=Exclusions(exclusions.sha256, data.split.excluded_by))


def start(cfg: RunConfig, device: torch.device, log: RunLog) -> Fit:
    """Seeded data and model, the memory check, the run's folder and state (a new run, or the one --resume
    names), then (main process) train.log, config.yaml and summary.json."""
    set_seed(cfg.run.seed)
    data = run_data(cfg, device)
    cfg = kept_exclusions(cfg, data)
    shape = tuple(data.recordings.data.shape[1:])
    check_input_size(cfg.model.name, shape)
    training = build_training(cfg, device)
    if reads_features(training.model):  # a resumed run's checkpoint replaces this fit with the stored one
        features = data.recordings.load_features().numpy()
        training.model.fit_baseline(features[data.split.train], data.recordings.labels[data.split.train].numpy(),
                                    cfg.loss.margin)
    if not cfg.devices.skip_memory_check:
        check_step_memory(cfg.model, cfg.optim.batch_size, training.model, shape, len(data.split.train), device,
                          training.amp_dtype)
    run, state = start_run(cfg, training, data)
    groups = data.split.groups and dict(zip(("train", "val", "test"), data.split.groups))
    summary = RunSummary(run, cfg, class_table(data.recordings.classes), time.time() - state.elapsed, groups)
    fit = Fit(cfg, training, data, device, run, state, summary, run_callbacks(cfg, training, data, run),
              BackgroundFigures(background=device.type == "cuda"))
    if distributed.is_main():
        log.attach(run.log)
        save_text(config.to_yaml(cfg), run.config)
        summary.write(state.history, "running")
    print(describe(run, data, cfg, device), flush=True)
    return fit
