"""The command line of train.py: the parser, the checks of flag values, and a resumed run's arguments."""

import argparse
import math
from pathlib import Path

import config
from audio_data.classes import find_frequencies, frequency_hz, run_classes
from audio_data.demo import demo_kind
from audio_data.spectrogram import REFERENCES
from losses import LOSS_TYPES, ghm_flag_problems
from models import MODELS
from models.pair_forward import PAIR_FORWARD
from training.loop import AMP_DTYPES
from utils.checkpoints import load_checkpoint, newest_checkpoint
from utils.common_utils import device_available
from utils.errors import InputError
from utils.history import MONITORS
from utils.ghm_utils import stats_batch_rule
from utils.run_paths import NAME_PART
from utils.tensorboard_log import tensorboard_missing

# What a resumed run may change; every other flag must match the run being resumed.
RESUME_OVERRIDES = ("resume", "epochs", "checkpoint_interval", "device", "num_workers", "threads", "no_progress",
                    "tensorboard", "data_on_device", "skip_memory_check",
                    "profile")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train an audio ranker (standard or GHM margin ranking loss).")
    p.add_argument("--frequency",
                   help="tone frequency to train on, <N>hz as in the file names (e.g. 1000hz); 'all' trains each "
                        "frequency found in turn (required unless --resume)")
    p.add_argument("--material", default=config.MATERIAL,
                   help="material folder, or several separated by commas (plastic,box) pooled into one run "
                        "(default: %(default)s)")
    p.add_argument("--classes",
                   help="the class folders in rank order, comma-separated (default: the class folders found, "
                        "ordered by the number in their names: deg000 < deg036 < … ; deg-30 and az045 work too)")
    p.add_argument("--data-root", default=None,
                   help=f"dataset folder (default: {config.DATA_ROOT}; with --demo "
                        f"{config.DEMO_DATA_ROOTS['synthetic']}, with --demo room {config.DEMO_DATA_ROOTS['room']})")
    p.add_argument("--seqs", default=",".join(config.SELECTED_SEQS),
                   help="comma-separated sequence numbers to load, or 'all' (default: %(default)s)")
    p.add_argument("--demo", nargs="?", const="synthetic", choices=list(config.DEMO_DATA_ROOTS),
                   help="generate a demo dataset (once) and train on it: synthetic (the default; "
                        "audio_data/synthetic.py) or room (image-source room simulation; audio_data/room.py)")
    p.add_argument("--db-reference", default="peak", choices=REFERENCES,
                   help="what 0 dB is in the spectrogram: peak, the recording's own maximum (the original, which drops "
                        "the recording's level), or full-scale, a full-scale sine (the level stays; for models that "
                        "use it, such as simple_cnn_level) (default: %(default)s)")
    p.add_argument("--save-dir", default=config.SAVE_DIR, help="where outputs go (default: %(default)s)")
    p.add_argument("--run-name", metavar="NAME",
                   help="a fixed run folder, <save-dir>/model_checkpoints/NAME (with --frequency all, NAME_<frequency> "
                        "each); the same command again resumes the run from its newest checkpoint, or reports it "
                        "if it has finished: for requeued cluster jobs (default: <material>_<frequency>_<loss>…_"
                        "<timestamp>, a new folder each time)")
    p.add_argument("--model", default="simple_cnn", choices=list(MODELS), help="(default: %(default)s)")
    p.add_argument("--loss-type", default="ghm", choices=LOSS_TYPES, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=config.EPOCHS, help="(default: %(default)s)")
    p.add_argument("--checkpoint-interval", type=int, default=config.CHECKPOINT_INTERVAL,
                   help="save a checkpoint every N epochs and after the last (default: %(default)s)")
    p.add_argument("--monitor", default="val_loss", choices=list(MONITORS),
                   help="what chooses model_best.pt and the model the final evaluation reports: val_loss (the "
                        "training loss on the validation pairs, as the learning-rate schedule uses), "
                        "val_margin_loss (the plain margin loss, unweighted also in GHM runs) or val_accuracy "
                        "(default: %(default)s)")
    p.add_argument("--early-stop-patience", type=int, default=0,
                   help="stop when --monitor has not improved for N epochs (default 0: never)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="hold out this share of each class's recordings (at least one each, seeded by --seed) as a "
                        "test split, on which the final evaluation reports the chosen model; the rest is split "
                        "70/30 as without it (default 0: no test split, the final evaluation uses the validation "
                        "recordings that chose the model, an optimistic figure)")
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
    p.add_argument("--exclude-recordings", type=read_exclusions, metavar="FILE",
                   help="a text file with one recording per line (a path, or a file name) that the run does not "
                        "train on; the list itself is stored in the run's arguments (default: none)")
    p.add_argument("--duration", type=float,
                   help="crop or zero-pad every recording to this many seconds (default: all must be equally long)")
    p.add_argument("--time-crop", type=float, metavar="FRACTION",
                   help="augmentation: train on random windows of this fraction (0 < f <= 1) of each recording's "
                        "frames, a new window per batch; validation and evaluation see whole recordings "
                        "(default: whole recordings)")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="skip unreadable, empty, silent or non-finite recordings and those at another sample rate, "
                        "with a warning each (default: they are errors)")
    p.add_argument("--cache-dir", help="keep computed spectrograms here (one .npy per recording), reuse them in "
                                        "later runs and read them memory-mapped instead of holding the dataset in "
                                        "memory; a changed recording gets a new entry (default: no cache)")
    p.add_argument("--data-on-device", action="store_true",
                   help="keep the spectrograms on the training device (a GPU) and gather each batch there, instead of "
                        "copying every batch from the host; for data sets that fit in its memory")
    p.add_argument("--n-fft", type=int, default=config.N_FFT, help="STFT size (default: %(default)s)")
    p.add_argument("--hop-length", type=int, default=config.HOP_LENGTH, help="STFT hop (default: %(default)s)")
    p.add_argument("--pair-forward", default="separate", choices=list(PAIR_FORWARD),
                   help="separate: model(x1), model(x2) (the small CNNs convolve a repeated recording once, "
                        "with the same result); unique: each distinct recording of a batch once, BatchNorm then sees "
                        "each once (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto: CUDA, then MPS, then CPU (default: %(default)s)")
    p.add_argument("--deterministic", action="store_true",
                   help="on CUDA: deterministic kernels and no cuDNN autotuning, so that the same run repeats bit for "
                        "bit (slower); runs on the CPU repeat without it (default: autotuning)")
    p.add_argument("--profile", action="store_true",
                   help="print where the run's time went at its end: start-up, training steps, loader and per-batch "
                        "hooks, validation, epoch outputs, final evaluation")
    p.add_argument("--skip-memory-check", action="store_true",
                   help="train even when the estimated peak memory of a training step exceeds the memory available "
                        "(default: stop before training with the estimate and the largest batch size that fits)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over all processes' batches (CUDA only)")
    p.add_argument("--amp", default="off", choices=list(AMP_DTYPES),
                   help="mixed precision for the model (autocast); fp16 with gradient scaling; the losses and "
                        "GHM statistics stay float32 (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for PyTorch's operations; runs side by side (a sweep with JOBS > 1) should share "
                        "the cores instead of each taking all (default 0: PyTorch's own choice, all cores; torchrun "
                        "sets 1 per process unless OMP_NUM_THREADS says otherwise)")
    p.add_argument("--num-workers", type=int, default=0,
                   help="data loader worker processes (default: %(default)s)")
    p.add_argument("--config", metavar="FILE",
                   help="a YAML file of flag values (keys are flag names, e.g. learning_rate or learning-rate) that "
                        "replace the defaults; flags on the command line override it; a run's own config.yaml "
                        "starts the same run again")
    p.add_argument("--resume", metavar="PATH",
                   help="continue a run from a checkpoint, or from a run folder's newest one, in that run's folder; "
                        "only --epochs, --checkpoint-interval, --device, --num-workers, --threads, --no-progress and "
                        "--tensorboard may change")
    p.add_argument("--verify-consistency", action="store_true",
                   help="record the first three training batches and compare with an earlier record")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard event files to <run>/tensorboard/: losses, accuracies and learning rate "
                        "per step and per epoch, GHM bin counts and weights of the recorded batches as histograms "
                        "(needs the tensorboard package)")
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
             ("--frequency", args.frequency in (None, "all") or frequency_hz(args.frequency) is not None,
              "must be <N>hz as in the file names (e.g. 1000hz), or all"),
             ("--material", all(NAME_PART.fullmatch(m) for m in args.material.split(",")),
              "must be folder names separated by commas (letters, digits, '.', '_', '+', '-'; no path)"),
             ("--classes", args.classes is None or all(NAME_PART.fullmatch(c) for c in args.classes.split(",")),
              "must be folder names separated by commas"),
             ("--run-name", args.run_name is None or NAME_PART.fullmatch(args.run_name) is not None,
              "must be a folder name (letters, digits, '.', '_', '+', '-'; no path)"),
             ("--epochs", args.epochs >= 1, "must be >= 1"),
             ("--seed", 0 <= args.seed <= 2**32 - 1, "must be between 0 and 2**32 - 1"),
             ("--checkpoint-interval", args.checkpoint_interval >= 1, "must be >= 1"),
             ("--early-stop-patience", args.early_stop_patience >= 0, "must be >= 0"),
             ("--test-fraction", math.isfinite(args.test_fraction) and 0 <= args.test_fraction < 1,
              "must be >= 0 and < 1"),
             ("--batch-size", args.batch_size >= 1, "must be >= 1"),
             ("--learning-rate", math.isfinite(args.learning_rate) and args.learning_rate > 0,
              "must be > 0 and finite"),
             ("--weight-decay", math.isfinite(args.weight_decay) and args.weight_decay >= 0,
              "must be >= 0 and finite"),
             ("--margin", math.isfinite(args.margin) and args.margin > 0,
              "must be > 0 and finite"),
             ("--ghm-stats-batches", valid_stats_batches(args.ghm_stats_batches),
              "must be a comma list of first, last, all, every:N (N >= 1)"),
             ("--n-fft", args.n_fft >= 2, "must be >= 2"),
             ("--hop-length", args.hop_length >= 1, "must be >= 1"),
             ("--num-workers", args.num_workers >= 0, "must be >= 0"),
             ("--data-on-device", not args.data_on_device or not args.cache_dir and not args.num_workers,
              "needs the spectrograms in memory and the batches gathered in the main process: not with --cache-dir "
              "or --num-workers"),
             ("--threads", args.threads >= 0, "must be >= 0"),
             ("--duration", args.duration is None or math.isfinite(args.duration) and args.duration > 0,
              "must be > 0 and finite"),
             ("--time-crop", args.time_crop is None or math.isfinite(args.time_crop) and 0 < args.time_crop <= 1,
              "must be > 0 and <= 1"),
             ("--device", args.device == "auto" or device_available(args.device), "is not available here"),
             ("--sync-bn", not args.sync_bn or device_available("cuda"), "needs CUDA (PyTorch's SyncBatchNorm)"),
             ("--tensorboard", not args.tensorboard or not tensorboard_missing(),
              "needs the tensorboard package: python -m pip install tensorboard")]
    for flag, ok, problem in rules:
        if not ok:
            parser.error(f"{flag} {problem}")
    for flag, problem in ghm_flag_problems(vars(args)).items():  # the GHM loss's own rules
        parser.error(f"{flag} {problem}")
    if args.demo:
        args.classes = args.classes or ",".join(config.CLASSES)
        return
    root = Path(args.data_root)
    if not root.is_dir():
        parser.error(f"--data-root {root}: folder not found (use --demo for the demo dataset)")
    try:
        args.classes = ",".join(run_classes(root, args.material, args.classes))
    except InputError as exc:
        parser.error(str(exc))
    found = find_frequencies(root, args.classes.split(","), args.material.split(","))
    if not found:
        parser.error(f"--material {args.material}: no <material>_<class>_<N>hz_<seq>.wav recordings under "
                     f"{root}/<class>/{args.material}")
    if args.frequency != "all" and args.frequency not in found:
        parser.error(f"--frequency {args.frequency}: no {args.frequency} recordings under "
                     f"{root}/<class>/{args.material}; found: {', '.join(found) or 'none'}")


def argument_defaults() -> dict:
    """Every flag's default: what a checkpoint written before a flag existed trained with."""
    return {action.dest: action.default for action in get_args_parser()._actions if action.dest != "help"}


def explicit_args(argv: list[str] | None) -> dict:
    """Only the flags given on the command line."""
    parser = get_args_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def checkpoint_run(spec: str) -> tuple[Path, dict, dict]:
    """evaluate.py's and predict.py's --checkpoint: the file (or a run folder's newest checkpoint), the checkpoint,
    and the run's arguments (every flag's default for what the checkpoint predates)."""
    path = newest_checkpoint(spec, "--checkpoint")
    checkpoint = load_checkpoint(path, "--checkpoint")
    saved = saved_run_args(checkpoint)
    if problem := saved_args_problem(saved):
        raise InputError(f"--checkpoint {path}: not a train.py checkpoint ({problem})")
    return path, checkpoint, {**argument_defaults(), **saved}


def saved_run_args(checkpoint: dict) -> dict:
    """A checkpoint's arguments in today's terms: --demo was a switch (True/False) before it named a dataset."""
    saved = checkpoint["args"]
    if isinstance(saved, dict) and isinstance(saved.get("demo"), bool):
        return {**saved, "demo": demo_kind(saved["demo"])}
    return saved


def saved_args_problem(saved: dict) -> str | None:
    """What makes a checkpoint's `args` unusable: a run's core arguments missing, or a flag's value of a type
    (or outside the choices) that the flag itself does not allow."""
    missing = [key for key in ("data_root", "material", "frequency", "seed") if key not in saved]
    if missing:
        return f"its args lack {', '.join(missing)}"
    for action in get_args_parser()._actions:
        if action.dest in saved and action.dest != "help" and not value_fits(action, saved[action.dest]):
            return f"its args hold {action.dest} = {saved[action.dest]!r}"
    return None


def read_exclusions(path: str) -> list[str]:
    """--exclude-recordings: the file's non-empty lines (comments after #), stored as the flag's value."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: cannot be read ({exc})") from None
    return [entry for entry in (line.split("#", 1)[0].strip() for line in lines) if entry]


def value_fits(action: argparse.Action, value: object) -> bool:
    """Whether `value` has the type (and lies among the choices) that the flag's own parser would give."""
    if value is None and (action.default is None or action.dest == "data_root"):
        return True
    if action.type is read_exclusions:  # the value is the list the file held
        return isinstance(value, list) and all(isinstance(entry, str) for entry in value)
    kind = action.type or (str if action.default is None else type(action.default))
    if kind is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    return fits and (action.choices is None or value in action.choices)


def config_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    """The flag values of a --config YAML file; parser errors name the file and the key."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        parser.error(f"--config {path}: cannot be read as YAML ({str(exc).splitlines()[0]})")
    if not isinstance(values, dict):
        parser.error(f"--config {path}: not a mapping of flag names to values")
    values = saved_run_args({"args": values})  # the config.yaml of an older run
    actions = {action.dest: action for action in parser._actions if action.dest not in ("help", "config")}
    defaults = {}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            parser.error(f"--config {path}: unknown key {key!r} (keys are train.py's flag names)")
        if not value_fits(actions[dest], value):
            parser.error(f"--config {path}: key {key!r} holds {value!r}, not a value of --{dest.replace('_', '-')}")
        defaults[dest] = value
    return defaults


def changed_argument(values: dict, saved: dict) -> str | None:
    """The first argument, besides those a resumed run may change, whose value differs from the run's own."""
    return next((key for key, value in values.items()
                 if key not in RESUME_OVERRIDES and key in saved and saved[key] != value), None)


def resumed_args(parser: argparse.ArgumentParser, argv: list[str] | None, args: argparse.Namespace) -> dict:
    """The run's own arguments from its checkpoint, with the few flags a resumed run may change."""
    try:
        path = newest_checkpoint(args.resume, "--resume")
        checkpoint = load_checkpoint(path, "--resume", ("args", "epoch"))
    except InputError as exc:
        parser.error(str(exc))
    saved, done = saved_run_args(checkpoint), checkpoint["epoch"]
    if problem := saved_args_problem(saved):
        parser.error(f"--resume {path}: not a checkpoint this program can resume ({problem})")
    given = explicit_args(argv)
    if given.get("epochs", done) < done:
        parser.error(f"--epochs {given['epochs']}: the run in {path} has already trained {done} epochs; "
                     "give at least that many")
    if key := changed_argument(given, saved):
        parser.error(f"--{key.replace('_', '-')} {given[key]}: the run in {path} was trained with {saved[key]}; "
                     f"a resumed run keeps its arguments (it may change {', '.join(RESUME_OVERRIDES[1:])})")
    overrides = {key: given[key] for key in RESUME_OVERRIDES if key in given}
    # a checkpoint from before --classes existed trained on the old data set's six classes
    return {**vars(args), "classes": ",".join(config.CLASSES), **saved, **overrides, "resume": str(path)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = get_args_parser()
    args = parser.parse_args(argv)  # --help and malformed flags, before explicit_args hides the defaults
    given = explicit_args(argv)
    if given.get("config"):
        if given.get("resume"):
            parser.error("--config: a resumed run keeps its own arguments; give --resume alone")
        parser.set_defaults(**config_defaults(parser, given["config"]))
        args = parser.parse_args(argv)
    del args.config  # the values it gave are the run's arguments; the file's name is not one
    if args.resume:
        args = argparse.Namespace(**resumed_args(parser, argv, args))
    if args.data_root is None:
        args.data_root = config.DEMO_DATA_ROOTS[args.demo] if args.demo else config.DATA_ROOT
    check_args(parser, args)
    return args
