"""Train a ranker that orders recordings by sound-source angle, with the standard or the GHM loss.

    python train.py --frequency 1000hz --loss-type ghm --epochs 30
    python train.py --demo --frequency 1000hz --epochs 3
"""

import argparse
import copy
import math
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, random_split
from tqdm import tqdm

import config
from datasets import RankingPairDataset, SpectrogramDatasetWithMaterial
from datasets.synthetic import ensure_demo_data
from losses import LOSS_TYPES, GHMRankingLoss, build_loss
from models import MODELS, build_model, check_input_size
from models.pair_forward import PAIR_FORWARD, PairScorer
from utils import distributed, interrupt
from utils.checkpoints import capture_rng, load_checkpoint, newest_checkpoint, restore_rng
from utils.common_utils import choose_device, device_available, set_seed, worker_init_fn
from utils.debugging_utils import verify_batch_consistency
from utils.errors import InputError, TrainingStopped
from utils.evaluation import evaluate_recordings, headline, write_evaluation
from utils.ghm_utils import ghm_batch_stats, plot_grad_distribution, stats_batch_rule
from utils.history import history_problem, new_history, plot_history
from utils.io_utils import atomic_path, save_pickle
from utils.memory import retain_freed_memory
from utils.run_paths import NAME_PART, RunPaths, reserve_run, run_name_prefix, run_problem
from utils.run_summary import Heartbeat, write_summary

# Arguments that decide which batches training sees; --verify-consistency compares runs on these.
BATCH_ARGS = ("data_root", "material", "frequency", "seqs", "seed", "batch_size", "n_fft", "hop_length", "duration",
              "skip_bad_files")
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# What a resumed run may change; every other flag must match the run being resumed.
RESUME_OVERRIDES = ("resume", "epochs", "checkpoint_interval", "device", "num_workers", "no_progress")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train an audio ranker (standard or GHM margin ranking loss).")
    p.add_argument("--frequency", choices=config.FREQUENCIES + ["all"],
                   help="tone frequency to train on; 'all' trains each in turn (required unless --resume)")
    p.add_argument("--material", default=config.MATERIAL, help="material folder (default: %(default)s)")
    p.add_argument("--data-root", default=None,
                   help=f"dataset folder (default: {config.DATA_ROOT}, or {config.DEMO_DATA_ROOT} with --demo)")
    p.add_argument("--seqs", default=",".join(config.SELECTED_SEQS),
                   help="comma-separated sequence numbers to load, or 'all' (default: %(default)s)")
    p.add_argument("--demo", action="store_true", help="generate the synthetic demo dataset (once) and train on it")
    p.add_argument("--save-dir", default=config.SAVE_DIR, help="where outputs go (default: %(default)s)")
    p.add_argument("--model", default="simple_cnn", choices=list(MODELS), help="(default: %(default)s)")
    p.add_argument("--loss-type", default="ghm", choices=LOSS_TYPES, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=config.EPOCHS, help="(default: %(default)s)")
    p.add_argument("--checkpoint-interval", type=int, default=config.CHECKPOINT_INTERVAL,
                   help="save a checkpoint every N epochs and after the last (default: %(default)s)")
    p.add_argument("--seed", type=int, default=config.SEED, help="(default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=config.LEARNING_RATE, help="Adam (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=config.BATCH_SIZE, help="pairs per batch (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=config.WEIGHT_DECAY, help="Adam (default: %(default)s)")
    p.add_argument("--margin", type=float, default=config.MARGIN,
                   help="margin of the ranking loss (default: %(default)s)")
    p.add_argument("--ghm-bins", type=int, default=config.GHM_BINS,
                   help="GHM difficulty bins (default: %(default)s)")
    p.add_argument("--ghm-alpha", type=float, default=config.GHM_ALPHA,
                   help="GHM density exponent, bin weight ∝ density^-alpha; 0 is the standard loss, "
                        "1 the GHM paper's weighting (not the paper's α = 0.75, which is --ghm-momentum) "
                        "(default: %(default)s)")
    p.add_argument("--ghm-momentum", type=float, default=config.GHM_MOMENTUM,
                   help="moving average of the bin counts, S = M·S + (1−M)·count, started from the first batch; "
                        "the GHM paper's α (0.75 there); 0: each batch's own counts (default: %(default)s)")
    p.add_argument("--ghm-temperature", type=float,
                   help="difficulty g = sigmoid((margin − t·(s1 − s2)) / T) (default: margin / 4)")
    p.add_argument("--ghm-max-weight", type=float, default=config.GHM_MAX_WEIGHT,
                   help="no pair weighs more than this (weights average 1 per batch); inf: no cap "
                        "(default: %(default)s)")
    p.add_argument("--ghm-stats", action="store_true",
                   help="with --loss-type standard: record the GHM statistics (and the weights GHM would give) "
                        "without changing training")
    p.add_argument("--ghm-stats-batches", default="first,last",
                   help="which training batches of each epoch get a statistics file: a comma list of first, last, "
                        "all, every:N (default: %(default)s)")
    p.add_argument("--duration", type=float,
                   help="crop or zero-pad every recording to this many seconds (default: all must be equally long)")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="skip unreadable, empty, silent or non-finite recordings and those at another sample rate, "
                        "with a warning each (default: they are errors)")
    p.add_argument("--cache-dir", help="keep computed spectrograms here (one .npy per recording), reuse them in "
                                        "later runs and read them memory-mapped instead of holding the dataset in "
                                        "memory; a changed recording gets a new entry (default: no cache)")
    p.add_argument("--n-fft", type=int, default=config.N_FFT, help="STFT size (default: %(default)s)")
    p.add_argument("--hop-length", type=int, default=config.HOP_LENGTH, help="STFT hop (default: %(default)s)")
    p.add_argument("--pair-forward", default="separate", choices=list(PAIR_FORWARD),
                   help="separate: model(x1), model(x2); unique: each distinct recording of a batch once, "
                        "BatchNorm then sees each once (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto: CUDA, then MPS, then CPU (default: %(default)s)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over all processes' batches (CUDA only)")
    p.add_argument("--amp", default="off", choices=list(AMP_DTYPES),
                   help="mixed precision for the model (autocast); fp16 with gradient scaling; the losses and "
                        "GHM statistics stay float32 (default: %(default)s)")
    p.add_argument("--num-workers", type=int, default=0,
                   help="data loader worker processes (default: %(default)s)")
    p.add_argument("--resume", metavar="PATH",
                   help="continue a run from a checkpoint, or from a run folder's newest one, in that run's folder; "
                        "only --epochs, --checkpoint-interval, --device, --num-workers and --no-progress may change")
    p.add_argument("--verify-consistency", action="store_true",
                   help="record the first three training batches and compare with an earlier record")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def valid_stats_batches(spec: str) -> bool:
    try:
        stats_batch_rule(spec)
    except ValueError:
        return False
    return True


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad flag values before any data is loaded."""
    rules = [("--frequency", args.frequency is not None, "is required"),
             ("--material", NAME_PART.fullmatch(args.material) is not None,
              "must be a folder name (letters, digits, '.', '_', '+', '-'; no path)"),
             ("--epochs", args.epochs >= 1, "must be >= 1"),
             ("--seed", 0 <= args.seed <= 2**32 - 1, "must be between 0 and 2**32 - 1"),
             ("--checkpoint-interval", args.checkpoint_interval >= 1, "must be >= 1"),
             ("--batch-size", args.batch_size >= 1, "must be >= 1"),
             ("--learning-rate", math.isfinite(args.learning_rate) and args.learning_rate > 0,
              "must be > 0 and finite"),
             ("--weight-decay", math.isfinite(args.weight_decay) and args.weight_decay >= 0,
              "must be >= 0 and finite"),
             ("--ghm-bins", args.ghm_bins >= 1, "must be >= 1"),
             ("--ghm-alpha", args.ghm_alpha >= 0, "must be >= 0"),
             ("--ghm-momentum", 0 <= args.ghm_momentum < 1, "must be >= 0 and < 1"),
             ("--ghm-temperature", args.ghm_temperature is None or args.ghm_temperature > 0, "must be > 0"),
             ("--margin", math.isfinite(args.margin) and args.margin > 0,
              "must be > 0 and finite"),
             ("--ghm-max-weight", args.ghm_max_weight >= 1, "must be >= 1 (weights average 1)"),
             ("--ghm-stats-batches", valid_stats_batches(args.ghm_stats_batches),
              "must be a comma list of first, last, all, every:N (N >= 1)"),
             ("--n-fft", args.n_fft >= 2, "must be >= 2"),
             ("--hop-length", args.hop_length >= 1, "must be >= 1"),
             ("--num-workers", args.num_workers >= 0, "must be >= 0"),
             ("--duration", args.duration is None or math.isfinite(args.duration) and args.duration > 0,
              "must be > 0 and finite"),
             ("--device", args.device == "auto" or device_available(args.device), "is not available here"),
             ("--sync-bn", not args.sync_bn or device_available("cuda"), "needs CUDA (PyTorch's SyncBatchNorm)")]
    for flag, ok, problem in rules:
        if not ok:
            parser.error(f"{flag} {problem}")
    if args.demo:
        return
    root = Path(args.data_root)
    if not root.is_dir():
        parser.error(f"--data-root {root}: folder not found (use --demo for the demo dataset)")
    folders = [root / c / args.material for c in config.CLASSES if (root / c / args.material).is_dir()]
    if not folders:
        parser.error(f"--material {args.material}: no <class>/{args.material} folder under {root}")
    if args.frequency != "all" and not any(next(f.glob(f"*_{args.frequency}_*.wav"), None) for f in folders):
        parser.error(f"--frequency {args.frequency}: no {args.frequency} recordings under "
                     f"{root}/<class>/{args.material}")


def explicit_args(argv: list[str] | None) -> dict:
    """Only the flags given on the command line."""
    parser = get_args_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def saved_args_problem(saved: dict) -> str | None:
    """What makes a checkpoint's `args` unusable: a run's core arguments missing, or a flag's value of a type
    (or outside the choices) that the flag itself does not allow."""
    missing = [key for key in ("data_root", "material", "frequency", "seed") if key not in saved]
    if missing:
        return f"its args lack {', '.join(missing)}"
    for action in get_args_parser()._actions:
        if action.dest not in saved or action.dest == "help":
            continue
        value, kind = saved[action.dest], action.type or (str if action.default is None else type(action.default))
        if value is None and (action.default is None or action.dest == "data_root"):
            continue
        if kind is float:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not fits or (action.choices is not None and value not in action.choices):
            return f"its args hold {action.dest} = {value!r}"
    return None


def resumed_args(parser: argparse.ArgumentParser, argv: list[str] | None, args: argparse.Namespace) -> dict:
    """The run's own arguments from its checkpoint, with the few flags a resumed run may change."""
    try:
        path = newest_checkpoint(args.resume, "--resume")
        checkpoint = load_checkpoint(path, "--resume", ("args", "epoch"))
    except InputError as exc:
        parser.error(str(exc))
    saved, done = checkpoint["args"], checkpoint["epoch"]
    if problem := saved_args_problem(saved):
        parser.error(f"--resume {path}: not a checkpoint this program can resume ({problem})")
    given = explicit_args(argv)
    if given.get("epochs", done) < done:
        parser.error(f"--epochs {given['epochs']}: the run in {path} has already trained {done} epochs; "
                     "give at least that many")
    for key, value in given.items():
        if key not in RESUME_OVERRIDES and value != saved.get(key, value):
            parser.error(f"--{key.replace('_', '-')} {value}: the run in {path} was trained with {saved[key]}; "
                         f"a resumed run keeps its arguments (it may change {', '.join(RESUME_OVERRIDES[1:])})")
    overrides = {key: given[key] for key in RESUME_OVERRIDES if key in given}
    return {**vars(args), **saved, **overrides, "resume": str(path)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.resume:
        args = argparse.Namespace(**resumed_args(parser, argv, args))
    if args.data_root is None:
        args.data_root = config.DEMO_DATA_ROOT if args.demo else config.DATA_ROOT
    check_args(parser, args)
    return args


def load_recordings(run_args: dict, frequency: str) -> SpectrogramDatasetWithMaterial:
    """The recordings that a run with these arguments (as a plain dict, as checkpoints store them) uses."""
    seqs = run_args.get("seqs", ",".join(config.SELECTED_SEQS))
    selected = None if seqs == "all" else [s.strip() for s in seqs.split(",") if s.strip()]
    return SpectrogramDatasetWithMaterial(
        run_args["data_root"], config.CLASSES, selected, frequency, run_args["material"],
        n_fft=run_args.get("n_fft", config.N_FFT), hop_length=run_args.get("hop_length", config.HOP_LENGTH),
        cache_dir=run_args.get("cache_dir"),
        duration=run_args.get("duration"), skip_bad_files=run_args.get("skip_bad_files", False))


def make_loader(pairs: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int) -> DataLoader:
    """Under torchrun each process loads its own share of the pairs (a DistributedSampler)."""
    sampler = DistributedSampler(pairs, shuffle=shuffle, seed=seed, drop_last=True) if distributed.active() else None
    return DataLoader(pairs, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      drop_last=True, num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=worker_init_fn)


def split_recordings(recordings: Dataset, seed: int) -> tuple[Subset, Subset]:
    """The seeded 70/30 train/validation split of the recordings."""
    n_train = int(config.TRAIN_FRACTION * len(recordings))
    return random_split(recordings, [n_train, len(recordings) - n_train],
                        generator=torch.Generator().manual_seed(seed))


def build_data(args: argparse.Namespace, frequency: str) -> tuple:
    """Recordings, a seeded 70/30 split into train/validation pairs, and their loaders."""
    recordings = load_recordings(vars(args), frequency)
    check_input_size(args.model, tuple(recordings.data.shape[1:]))
    train_set, val_set = split_recordings(recordings, args.seed)
    train_pairs = RankingPairDataset(train_set, seed=args.seed)
    val_pairs = RankingPairDataset(val_set, seed=args.seed + 1)
    share = distributed.world_size()
    batch_size = min(args.batch_size, len(train_pairs) // share, len(val_pairs) // share)
    if batch_size < 1:
        raise InputError(f"{len(recordings)} recordings give {len(train_pairs)} training and {len(val_pairs)} "
                         "validation pairs of different classes; both splits need at least one")
    train_loader = make_loader(train_pairs, batch_size, True, args.seed, args.num_workers)
    val_loader = make_loader(val_pairs, batch_size, False, args.seed, args.num_workers)
    return recordings, train_loader, val_loader


def validation_indices(val_loader: DataLoader) -> list[int]:
    """Indices of the validation recordings (the val pair loader sits on a Subset of the recordings)."""
    return list(val_loader.dataset.dataset.indices)


def validation_paths(recordings: SpectrogramDatasetWithMaterial, val_loader: DataLoader) -> list[str]:
    return [recordings.paths[i] for i in validation_indices(val_loader)]


def pairwise_correct(s1: torch.Tensor, s2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pairs ordered as the target says; a tie counts as wrong."""
    return (target * (s1 - s2) > 0).sum()


def stop_check(device: torch.device) -> None:
    """interrupt.check, agreed by all processes under torchrun so that all stop after the same step."""
    interrupt.check(lambda flag: distributed.any_rank([flag], device)[0])


def run_epoch(t: "Training", loader: DataLoader, device: torch.device, train: bool, desc: str, progress: bool,
              on_batch: Callable | None = None) -> dict:
    """One pass over `loader`, with optimizer steps when `train`. Returns mean losses and accuracy.

    Stops between steps (TrainingInterrupted) once SIGINT or SIGTERM has arrived. Under torchrun the figures
    are over all processes' pairs, and every stop is decided by all processes together.
    """
    sums = {"loss_main": 0.0, "loss_standard_log": 0.0, "correct": 0, "pairs": 0}
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for batch_number, (x1, x2, target, _, _, index1, index2) in enumerate(bar, start=1):
        x1, x2, target = x1.to(device), x2.to(device), target.to(device)
        with torch.autocast(device.type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
            s1, s2 = t.scorer(x1, x2, index1, index2)
        s1, s2 = s1.float(), s2.float()  # the losses and GHM's difficulty, bins and weights in float32
        loss = t.criterion(s1, s2, target)
        loss_value = loss.item()
        if distributed.any_rank([not math.isfinite(loss_value)], device)[0]:
            raise TrainingStopped(f"{desc}, batch {batch_number}: the loss is {loss_value}; training stopped "
                                  "before this step, earlier checkpoints are kept")
        if train:
            t.optimizer.zero_grad(set_to_none=True)
            t.scaler.scale(loss).backward()
            t.scaler.step(t.optimizer)
            t.scaler.update()
        with torch.no_grad():
            standard_loss = loss if t.criterion is t.standard else t.standard(s1, s2, target)
            n = len(target)
            sums["loss_main"] += loss_value * n
            sums["loss_standard_log"] += standard_loss.item() * n
            sums["correct"] += int(pairwise_correct(s1, s2, target))
            sums["pairs"] += n
        if on_batch is not None:
            on_batch(batch_number, len(loader), s1.detach(), s2.detach(), target, index1, index2)
        bar.set_postfix(loss=f"{sums['loss_main'] / sums['pairs']:.4f}",
                        acc=f"{sums['correct'] / sums['pairs']:.3f}")
        stop_check(device)
    loss_main, loss_standard, correct, pairs = distributed.sum_over_ranks(list(sums.values()), device)
    return {"loss_main": loss_main / pairs, "loss_standard_log": loss_standard / pairs, "accuracy": correct / pairs}


def train_one_epoch(t: "Training", loader: DataLoader, device: torch.device, epoch: int, progress: bool,
                    on_batch: Callable | None = None) -> dict:
    t.model.train()
    t.criterion.train()
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    return run_epoch(t, loader, device, True, f"epoch {epoch} train", progress, on_batch)


@torch.no_grad()
def evaluate(t: "Training", loader: DataLoader, device: torch.device, epoch: int, progress: bool) -> dict:
    t.model.eval()
    t.criterion.eval()  # GHM momentum reads its state but does not update it on validation batches
    return run_epoch(t, loader, device, False, f"epoch {epoch} val", progress)


def plain_args(args: argparse.Namespace, frequency: str) -> dict:
    return {**vars(args), "frequency": frequency}


def ghm_options(args: argparse.Namespace | dict) -> dict:
    a = vars(args) if isinstance(args, argparse.Namespace) else args
    return {"bins": a["ghm_bins"], "alpha": a["ghm_alpha"], "momentum": a["ghm_momentum"],
            "temperature": a["ghm_temperature"] or config.GHM_TEMPERATURE_PER_MARGIN * a["margin"],
            "max_weight": None if math.isinf(a["ghm_max_weight"]) else a["ghm_max_weight"]}


@dataclass
class Training:
    """What one run trains with.

    `scorer` gives the pair scores (the model, wrapped for DistributedDataParallel under torchrun); `ghm` is
    the GHM loss, or the monitor of a standard run with --ghm-stats.
    """
    model: nn.Module
    scorer: nn.Module
    criterion: nn.Module
    standard: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    ghm: GHMRankingLoss | None
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler


def build_training(args: argparse.Namespace, device: torch.device) -> Training:
    model = build_model(args.model)
    if args.sync_bn and distributed.active():
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    scorer = PairScorer(model, args.pair_forward)
    if distributed.active():
        scorer = DistributedDataParallel(scorer, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = build_loss(args.loss_type, args.margin, **ghm_options(args)).to(device)
    standard = criterion if args.loss_type == "standard" else nn.MarginRankingLoss(margin=args.margin)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
    if args.loss_type == "ghm":
        ghm = criterion
    else:
        ghm = build_loss("ghm", args.margin, **ghm_options(args)).to(device) if args.ghm_stats else None
    # fp16 needs its gradients scaled against underflow; a disabled scaler is a plain backward and step
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    return Training(model, scorer, criterion, standard, optimizer, scheduler, ghm, AMP_DTYPES[args.amp], scaler)


def ghm_stats_recorder(t: Training, loss_type: str, rule: Callable, recordings: SpectrogramDatasetWithMaterial,
                       run: RunPaths, epoch: int) -> Callable:
    """A per-batch callback saving GHM statistics for the batches `rule` selects, plotting first and last.

    In a standard run it first feeds the batch to the GHM monitor, whose weights are recorded, not applied.
    """
    def record(batch: int, batches: int, s1: torch.Tensor, s2: torch.Tensor, target: torch.Tensor,
               index1: torch.Tensor, index2: torch.Tensor) -> None:
        if t.ghm is not t.criterion:
            t.ghm(s1, s2, target)
        if not rule(batch, batches):
            return
        last = {key: value.detach().cpu().numpy() for key, value in t.ghm.last_stats.items()}
        per_pair = ("g", "bin", "weight")
        shares = distributed.gather_to_main(([last[key] for key in per_pair], index1.tolist(), index2.tolist()))
        if shares is None:
            return
        for i, key in enumerate(per_pair):  # under torchrun: the global batch, rank by rank
            last[key] = np.concatenate([share[0][i] for share in shares])
        pairs = [pair for share in shares for pair in zip(share[1], share[2])]
        stats = ghm_batch_stats(t.ghm, last, loss_type, run.name, epoch, batch, (epoch - 1) * batches + batch,
                                [(recordings.paths[a], recordings.paths[b]) for a, b in pairs],
                                [(int(recordings.labels[a]), int(recordings.labels[b])) for a, b in pairs])
        save_pickle(stats, run.ghm_stats(epoch, batch))
        if batch in (1, batches):
            plot_grad_distribution(stats, run.grad_plot(epoch, batch))
    return record


def record_epoch(history: dict, epoch: int, train: dict, val: dict) -> None:
    history["epoch"].append(epoch)
    for split, metrics in (("train", train), ("val", val)):
        for key, value in metrics.items():
            history[f"{split}_{key}"].append(value)


def epoch_line(epoch: int, epochs: int, train: dict, val: dict, lr: float, seconds: float) -> str:
    parts = [f"epoch {epoch}/{epochs}"]
    for split, m in (("train", train), ("val", val)):
        parts.append(f"{split} loss {m['loss_main']:.4f} (margin {m['loss_standard_log']:.4f}) "
                     f"acc {m['accuracy']:.3f}")
    return "  ".join(parts + [f"lr {lr:.2e}", f"{seconds:.1f}s"])


def check_batches(args: argparse.Namespace, frequency: str, run: RunPaths) -> None:
    """--verify-consistency on a loader of its own, so that training's random streams are untouched."""
    _, loader, _ = build_data(args, frequency)
    folder = run.save_dir / "batch_consistency" / f"{args.material}_{frequency}_{args.loss_type}"
    key_args = {key: plain_args(args, frequency)[key] for key in BATCH_ARGS}
    print(verify_batch_consistency(loader, folder, run.timestamp, args.seed, key_args), flush=True)


def final_evaluation(model: nn.Module, recordings: SpectrogramDatasetWithMaterial, val_loader: DataLoader,
                     device: torch.device, run: RunPaths) -> dict | None:
    """evaluate.py's measures on the validation recordings, each scored once; report in <run>/eval/.

    None if SIGINT/SIGTERM stopped it: the caller's agreed stop check then stops every process together.
    """
    indices = validation_indices(val_loader)
    labels = recordings.labels[indices].numpy()
    try:
        scores, metrics = evaluate_recordings(model, recordings.data[indices], labels, recordings.classes, device,
                                              between=interrupt.check)
    except interrupt.TrainingInterrupted as exc:
        if exc.aborted:
            raise
        return None
    write_evaluation(run.evaluation, [recordings.paths[i] for i in indices], labels, scores, metrics,
                     recordings.classes, f"{run.name} (validation)", {"split": "val", "epoch": "final"})
    print(f"final model on the validation recordings: {headline(metrics)}", flush=True)
    return metrics


@dataclass
class RunState:
    """Where a run stands: the last complete epoch, its history, wall time so far, and its checkpoint."""
    epoch: int
    history: dict
    elapsed: float
    checkpoint: dict


def training_checkpoint(t: Training, state: RunState, loaders: tuple[DataLoader, DataLoader], run: RunPaths,
                        val_paths: list[str], train: dict | None = None, val: dict | None = None) -> dict:
    """Everything a bit-identical resume needs, copied so that training can go on: a plain dict."""
    return copy.deepcopy({
        "epoch": state.epoch, "model_state_dict": t.model.state_dict(),
        "optimizer_state_dict": t.optimizer.state_dict(), "scheduler_state_dict": t.scheduler.state_dict(),
        "scaler_state_dict": t.scaler.state_dict(),
        "ghm_state_dict": None if t.ghm is None else t.ghm.state_dict(),
        "train_loss": train and train["loss_main"], "train_accuracy": train and train["accuracy"],
        "val_loss": val and val["loss_main"], "val_accuracy": val and val["accuracy"],
        "args": state.history["args"], "val_recordings": val_paths, "history": state.history,
        "rng": capture_rng(), "loader_rng": [loader.generator.get_state() for loader in loaders],
        "run": {"name": run.name, "timestamp": run.timestamp}, "elapsed_s": state.elapsed})


RESUME_KEYS = ("epoch", "model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict",
               "ghm_state_dict", "args", "val_recordings", "history", "rng", "loader_rng", "run", "elapsed_s")


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def resumed_run(path: Path, checkpoint: dict) -> RunPaths:
    """The run folder a checkpoint belongs to; it must still sit in it, under the name pattern we write."""
    name, timestamp = checkpoint["run"].get("name"), checkpoint["run"].get("timestamp")
    if problem := run_problem(name, timestamp):
        raise InputError(f"--resume {path}: not a checkpoint this program wrote ({problem})")
    if path.parent.name != name or path.parent.parent.name != "model_checkpoints":
        raise InputError(f"--resume {path}: a run resumes in its own folder, model_checkpoints/{name}/; "
                         "this checkpoint is not there")
    return RunPaths(path.parent.parent.parent, name, timestamp)


def restore_training(path: Path, checkpoint: dict, t: Training, loaders: tuple[DataLoader, DataLoader],
                     val_paths: list[str]) -> RunState:
    """Load weights, optimizer, scheduler, GHM state and every random state; clear errors for mismatches.

    The run keeps a copy of the checkpoint to write back if it stops before its next epoch ends: the optimizer
    and scheduler keep references into the dict they load, and training must not change the saved state.
    """
    saved = copy.deepcopy(checkpoint)
    if checkpoint["val_recordings"] != val_paths:
        raise InputError(f"--resume {path}: the recordings are not the ones the run used (the data folder changed?)")
    if problem := history_problem(checkpoint["history"]):
        raise InputError(f"--resume {path}: its history is damaged ({problem})")
    if (t.ghm is None) != (checkpoint["ghm_state_dict"] is None):
        raise InputError(f"--resume {path}: the checkpoint {'lacks' if t.ghm else 'has'} a GHM state")
    parts = [("model", t.model.load_state_dict, checkpoint["model_state_dict"]),
             ("GHM state", t.ghm and t.ghm.load_state_dict, checkpoint["ghm_state_dict"]),
             ("optimizer state", t.optimizer.load_state_dict, checkpoint["optimizer_state_dict"]),
             ("scheduler state", t.scheduler.load_state_dict, checkpoint["scheduler_state_dict"]),
             ("gradient scaler state", t.scaler.load_state_dict, checkpoint["scaler_state_dict"]),
             ("loaders' random states", lambda states: restore_loader_rng(loaders, states), checkpoint["loader_rng"]),
             ("random states", restore_rng, checkpoint["rng"])]
    for what, load, state in parts:
        if load is None:
            continue
        try:
            load(state)
        except Exception as exc:  # a foreign state fails in many ways; each is this one error
            raise InputError(f"--resume {path}: its {what} does not fit this run "
                             f"({str(exc).strip().splitlines()[-1].strip() or type(exc).__name__})") from None
    return RunState(saved["epoch"], saved["history"], saved["elapsed_s"], saved)


def restore_loader_rng(loaders: tuple[DataLoader, DataLoader], states: list) -> None:
    if len(states) != len(loaders):
        raise ValueError(f"{len(states)} states for {len(loaders)} loaders")
    for loader, state in zip(loaders, states):
        loader.generator.set_state(state)


def fit(args: argparse.Namespace, t: Training, recordings: SpectrogramDatasetWithMaterial,
        loaders: tuple[DataLoader, DataLoader], device: torch.device, run: RunPaths, state: RunState,
        started: float) -> None:
    """The epochs after `state.epoch`: train, validate, schedule, record, checkpoint.

    On SIGINT/SIGTERM the checkpoint of the last complete epoch is written before the run stops.
    """
    progress = not args.no_progress and sys.stderr.isatty() and distributed.is_main()
    rule = stats_batch_rule(args.ghm_stats_batches)
    val_paths = validation_paths(recordings, loaders[1])
    heartbeat = Heartbeat(lambda: write_summary(run, state.history, "running", started))
    for epoch in range(state.epoch + 1, args.epochs + 1):
        epoch_started = time.perf_counter()
        record = ghm_stats_recorder(t, args.loss_type, rule, recordings, run, epoch) if t.ghm else None

        def on_batch(*batch) -> None:
            if record is not None:
                record(*batch)
            if distributed.is_main():
                heartbeat()
        try:
            stop_check(device)
            train = train_one_epoch(t, loaders[0], device, epoch, progress, on_batch)
            val = evaluate(t, loaders[1], device, epoch, progress)
        except interrupt.TrainingInterrupted as exc:
            if not exc.aborted and distributed.is_main():
                save_checkpoint(run.checkpoint(state.epoch), state.checkpoint)
                save_pickle(state.history, run.history)
            raise
        t.scheduler.step(val["loss_main"])
        record_epoch(state.history, epoch, train, val)
        state.epoch, state.elapsed = epoch, time.time() - started
        if not distributed.is_main():
            continue
        state.checkpoint = training_checkpoint(t, state, loaders, run, val_paths, train, val)
        save_pickle(state.history, run.history)
        plot_history(state.history, run.history_plot, run.name)
        if epoch % args.checkpoint_interval == 0 or epoch == args.epochs:
            save_checkpoint(run.checkpoint(epoch), state.checkpoint)
        write_summary(run, state.history, "running", started)
        print(epoch_line(epoch, args.epochs, train, val, t.optimizer.param_groups[0]["lr"],
                         time.perf_counter() - epoch_started), flush=True)


def start_run(args: argparse.Namespace, frequency: str, t: Training, recordings: SpectrogramDatasetWithMaterial,
              loaders: tuple[DataLoader, DataLoader]) -> tuple[RunPaths, RunState]:
    """A new run folder and state at epoch 0, or the run and state that --resume names."""
    val_paths = validation_paths(recordings, loaders[1])
    if args.resume:
        path = Path(args.resume)
        checkpoint = load_checkpoint(path, "--resume", RESUME_KEYS)
        run = resumed_run(path, checkpoint)
        checkpoint["history"]["args"]["epochs"] = args.epochs
        state = restore_training(path, checkpoint, t, loaders, val_paths)
        print(f"resuming run {run.name} after epoch {state.epoch} of {args.epochs}", flush=True)
        return run, state
    prefix = run_name_prefix(args.material, frequency, args.loss_type, args.ghm_alpha, args.seed)
    run = distributed.broadcast_from_main(reserve_run(args.save_dir, prefix) if distributed.is_main() else None)
    state = RunState(0, new_history(plain_args(args, frequency)), 0.0, {})
    state.checkpoint = training_checkpoint(t, state, loaders, run, val_paths)
    return run, state


def train_frequency(args: argparse.Namespace, frequency: str, device: torch.device) -> dict:
    """One complete training run (or the rest of a resumed one); returns its summary.

    Under torchrun every process trains; rank 0 alone prints and writes files.
    """
    set_seed(args.seed)
    recordings, train_loader, val_loader = build_data(args, frequency)
    training = build_training(args, device)
    run, state = start_run(args, frequency, training, recordings, (train_loader, val_loader))
    started = time.time() - state.elapsed
    history = state.history
    main_process = distributed.is_main()
    if main_process:
        write_summary(run, history, "running", started)
    print(f"run {run.name}: {len(recordings)} recordings ({recordings.data.shape[2]}x{recordings.data.shape[3]} "
          f"spectrograms), {len(train_loader.dataset)} train / {len(val_loader.dataset)} val pairs, "
          f"batch {train_loader.batch_size}, device {device}{' (--device auto)' if args.device == 'auto' else ''}"
          f"{'' if args.amp == 'off' else ', mixed precision ' + args.amp}"
          f"{f', {distributed.world_size()} processes' if distributed.active() else ''}", flush=True)
    try:
        if args.verify_consistency and not args.resume and main_process:
            check_batches(args, frequency, run)
        fit(args, training, recordings, (train_loader, val_loader), device, run, state, started)
        stop_check(device)
        metrics = final_evaluation(training.model, recordings, val_loader, device, run) if main_process else None
        metrics = distributed.broadcast_from_main(metrics)
        stop_check(device)
    except interrupt.TrainingInterrupted as exc:
        how = "aborted" if exc.aborted else f"stopped; the state after epoch {state.epoch} is saved"
        where = "the final evaluation" if state.epoch == args.epochs else f"epoch {state.epoch + 1}"
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
    return {"frequency": frequency, "status": "ok", "run": run.name, "epochs": args.epochs,
            "final_val_accuracy": history["val_accuracy"][-1], "best_val_accuracy": max(history["val_accuracy"]),
            **headline_metrics}


def print_summary(results: list[dict]) -> None:
    print("\nfrequency  status  final val acc  best val acc  all-pairs acc  Kendall tau  run")
    for r in results:
        if r["status"] == "ok":
            print(f"{r['frequency']:<10} ok      {r['final_val_accuracy']:>12.3f}  {r['best_val_accuracy']:>12.3f}  "
                  f"{r['pairwise_accuracy']:>13.3f}  {r['kendall_tau_b']:>11.3f}  {r['run']}")
        else:
            print(f"{r['frequency']:<10} FAILED  {r['error']}")


def train_all(args: argparse.Namespace, device: torch.device) -> int:
    frequencies = config.FREQUENCIES if args.frequency == "all" else [args.frequency]
    results = []
    for frequency in frequencies:
        try:
            results.append(train_frequency(args, frequency, device))
        except (InputError, TrainingStopped) as exc:
            if distributed.is_main():
                print(f"error: {exc}", file=sys.stderr)
            results.append({"frequency": frequency, "status": "failed", "error": str(exc)})
        except Exception as exc:  # an unexpected failure of one frequency must not stop the others
            if len(frequencies) == 1:
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
