"""The project's defaults and the run's typed configuration.

Every setting of train.py is a field of one frozen section (data, model, loss and GHM, optimisation, run and
outputs, devices) that names its flag, default, help, choices, the rule its value must keep and whether a resumed
(or requeued) run may change it. train.py's parser, its `--help` groups, `--print-config`, config.yaml and the
arguments stored in checkpoints, histories and summaries are all made from these fields; `migrate` reads the stored
arguments of every earlier format. Importing this module defines things only; it imports nothing of the project.
"""

import argparse
import hashlib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from types import UnionType
from typing import Any, Union, get_args, get_origin

CLASSES = ["deg000", "deg036", "deg072", "deg108", "deg144", "deg180"]
MATERIALS = ["plastic", "box"]
FREQUENCIES = ["500hz", "1000hz", "3000hz"]
SELECTED_SEQS = [f"{i:02d}" for i in range(9)]

DATA_ROOT = "data"
DEMO_DATA_ROOT = "demo_data"
DEMO_DATA_ROOTS = {"synthetic": DEMO_DATA_ROOT, "room": "demo_room_data"}  # --demo KIND
SAVE_DIR = "saved_models"
MATERIAL = "plastic"

N_FFT = 2048
HOP_LENGTH = 256

EPOCHS = 30
CHECKPOINT_INTERVAL = 5
SEED = 42
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
# The baseline-residual models' residual starts at zero: at LEARNING_RATE it hardly moves in a run (docs/evidence.md).
MODEL_LEARNING_RATES = {"baseline_residual": 1e-2, "onset_residual": 1e-2}
WEIGHT_DECAY = 1e-4
MARGIN = 10.0
TRAIN_FRACTION = 0.7

GHM_BINS = 10
GHM_ALPHA = 0.75
GHM_MOMENTUM = 0.0
GHM_TEMPERATURE_PER_MARGIN = 0.25  # default temperature = margin / 4; docs/models-and-losses.md has the evidence
GHM_MAX_WEIGHT = 5.0  # docs/models-and-losses.md: binds on lone-pair batches only

# The names each choice-flag takes; the registries behind them (models.MODELS, losses, ...) are keyed by these.
MODEL_NAMES = ("simple_cnn", "resnet18", "simple_cnn_level", "spectrum_cnn", "baseline_residual", "onset_residual")
LOSS_TYPES = ("standard", "ghm")
PAIR_FORWARDS = ("separate", "unique")
PAIR_SCOPES = ("all", "subset")
AMP_MODES = ("off", "bf16", "fp16")
MONITORS = ("val_loss", "val_margin_loss", "val_accuracy")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("plateau", "cosine", "step", "none")
DB_REFERENCES = ("peak", "full-scale")
DEVICES = ("auto", "cpu", "cuda", "mps")  # --device of every command
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")  # --logger: csv, metrics.csv, is always written

# 1: arguments without a format_version (to 2026-12-05): --no-progress stored as no_progress, and before the room
# demo existed --demo as True/False. 2: with format_version, --progress/--no-progress stored as progress.
# 3: exclude_recordings stored as {"sha256", "entries"} (the entries that named a recording of the run).
# 4: logger (a list of trackers) in place of tensorboard (True/False).
CONFIG_FORMAT = 4


@dataclass(frozen=True, eq=False)
class Exclusions:
    """--exclude-recordings: its entries (file names or paths), and the SHA-256 of the whole list as given. A run
    keeps only the entries that named one of its recordings; two lists are the same list when their hashes are,
    so the same command with the same file still resumes a run whose stored list was cut down."""
    sha256: str
    entries: tuple[str, ...]

    @classmethod
    def of(cls, entries: list[str]) -> "Exclusions":
        return cls(hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest(), tuple(entries))

    @classmethod
    def plain_fits(cls, value: Any) -> bool:
        """Whether `value` is the stored form: {"sha256": hex, "entries": [str, ...]}."""
        return (isinstance(value, dict) and set(value) == {"sha256", "entries"} and isinstance(value["sha256"], str)
                and isinstance(value["entries"], list) and all(isinstance(e, str) for e in value["entries"]))

    def plain(self) -> dict:
        return {"sha256": self.sha256, "entries": list(self.entries)}

    def __str__(self) -> str:
        return f"a list of {len(self.entries)} entries (SHA-256 {self.sha256[:12]}…)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Exclusions) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)


def stats_batch_rule(spec: str) -> Callable[[int, int], bool]:
    """--ghm-stats-batches: `first,last`, `all`, `every:N` (comma-combined) → whether batch b of an epoch of n gets
    a statistics file; ValueError for anything else."""
    tests = []
    for token in (t.strip() for t in spec.split(",")):
        if token == "first":
            tests.append(lambda b, n: b == 1)
        elif token == "last":
            tests.append(lambda b, n: b == n)
        elif token == "all":
            tests.append(lambda b, n: True)
        elif token.startswith("every:") and token[6:].isdigit() and int(token[6:]) >= 1:
            tests.append(lambda b, n, k=int(token[6:]): b % k == 0)
        else:
            raise ValueError(f"bad batch selection {token!r} in {spec!r}")
    return lambda batch, batches: any(test(batch, batches) for test in tests)


def stats_batches_valid(spec: str) -> bool:
    try:
        stats_batch_rule(spec)
    except ValueError:
        return False
    return True


def finite(low: float, high: float = math.inf, low_open: bool = False) -> Callable[[float], bool]:
    return lambda v: math.isfinite(v) and (v > low if low_open else v >= low) and v < high


def setting(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None,
            rule: tuple[Callable[[Any], bool], str] | None = None, resumable: bool = False,
            metavar: str | None = None, const: Any = None, parse: Callable[[str], Any] | None = None) -> Any:
    """A configuration field: its default and what its flag needs (the flag defaults to --<field-name>)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "rule": rule,
                                            "resumable": resumable, "metavar": metavar, "const": const,
                                            "parse": parse})


def regex_valid(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


AT_LEAST_ONE = (lambda v: v >= 1, "must be >= 1")
NOT_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
POSITIVE = (finite(0, low_open=True), "must be > 0 and finite")
NOT_NEGATIVE_FINITE = (finite(0), "must be >= 0 and finite")


def subset_name(material: str, frequency: str) -> str:
    """A subset's name: one material at one frequency, `<material>_<frequency>`."""
    return f"{material}_{frequency}"


def subset_names(material: str, frequency: str) -> list[str]:
    """`subset_name` of each of the comma-separated materials with each of the frequencies, material by material."""
    return [subset_name(m, f) for m in material.split(",") for f in frequency.split(",")]


@dataclass(frozen=True)
class DataConfig:
    """Which recordings a run uses and how each becomes a spectrogram."""
    frequency: str | None = setting(
        None, "tone frequency to train on, <N>hz as in the file names (e.g. 1000hz), or several separated by commas "
              "(500hz,1000hz) pooled into one run; 'all' trains each frequency found in turn (required unless "
              "--resume)")
    material: str = setting(MATERIAL, "material folder, or several separated by commas (plastic,box) pooled into "
                                      "one run")
    classes: str | None = setting(
        None, "the class folders in rank order, comma-separated (default: the class folders found, ordered by the "
              "number in their names: deg000 < deg036 < … ; deg-30 and az045 work too)")
    root: str | None = setting(
        None, f"dataset folder (default: {DATA_ROOT}; with --demo {DEMO_DATA_ROOTS['synthetic']}, with --demo room "
              f"{DEMO_DATA_ROOTS['room']})", flag="--data-root")
    manifest: str | None = setting(
        None, "a CSV of the recordings, one row each (path, class and/or angle, optional material, frequency, group, "
              "split and columns of your own), in place of the folder layout under --data-root (audio_data/"
              "manifest.py; default: the folder layout)", metavar="FILE.csv")
    group_pattern: str | None = setting(
        None, "a regular expression whose match in a recording's file name (its first parenthesised group, if it has "
              "one) is the recording's group, a take, placement or session: the split never divides a group "
              "(default: a manifest's group column; else no groups, the recordings split one by one)",
        metavar="REGEX", rule=(regex_valid, "must be a regular expression (Python's re module)"))
    seqs: str = setting(",".join(SELECTED_SEQS), "comma-separated sequence numbers to load, or 'all' (the folder "
                                                 "layout's; a manifest's rows are all taken)")
    pair_scope: str = setting(
        "all", "which recordings of different classes make the training and validation pairs: all, any two; subset, "
               "only two of the same material and frequency (a run that pools several ranks within each, as the "
               "final evaluation's per-subset figures measure it)", choices=PAIR_SCOPES)
    demo: str | None = setting(
        None, "generate a demo dataset (once) and train on it: synthetic (the default; audio_data/synthetic.py) or "
              "room (image-source room simulation; audio_data/room.py)", choices=tuple(DEMO_DATA_ROOTS),
        const="synthetic")
    db_reference: str = setting(
        "peak", "what 0 dB is in the spectrogram: peak, the recording's own maximum (the original, which drops the "
                "recording's level), or full-scale, a full-scale sine (the level stays; for models that use it, "
                "such as simple_cnn_level)", choices=DB_REFERENCES)
    exclude_recordings: Exclusions | None = setting(
        None, "a text file with one recording per line (a path, or a file name) that the run does not train on; "
              "the run stores the list's hash and the entries that named one of its recordings (default: none)",
        metavar="FILE", parse=str)
    duration: float | None = setting(
        None, "crop or zero-pad every recording to this many seconds (default: all must be equally long)",
        rule=POSITIVE)
    time_crop: float | None = setting(
        None, "augmentation: train on random windows of this fraction (0 < f <= 1) of each recording's frames, a new "
              "window per batch; validation and evaluation see whole recordings (default: whole recordings)",
        metavar="FRACTION", rule=(lambda v: math.isfinite(v) and 0 < v <= 1, "must be > 0 and <= 1"))
    sample_rate: int | None = setting(
        None, "the run's sample rate in Hz: recordings at another rate are resampled to it (soxr) and their "
              "spectrograms cached by content and rate (default: the rate most of the recordings have)",
        rule=AT_LEAST_ONE, metavar="HZ")
    skip_bad_files: bool = setting(
        False, "skip unreadable, empty, silent or non-finite recordings and (without --duration) those of another "
               "length than most, with a warning each (default: they are errors)")
    cache_dir: str | None = setting(
        None, "keep computed spectrograms here (one .npy per recording), reuse them in later runs and read them "
              "memory-mapped instead of holding the dataset in memory; a changed recording gets a new entry "
              "(default: no cache)")
    test_fraction: float = setting(
        0.0, "hold out this share of each class's recordings (at least one each, seeded by --seed) as a test split, "
             "on which the final evaluation reports the chosen model; the rest is split 70/30 as without it "
             "(default 0: no test split, the final evaluation uses the validation recordings that chose the model, "
             "an optimistic figure)", rule=(finite(0, 1), "must be >= 0 and < 1"))
    folds: int = setting(
        0, "K: K runs, each testing on one of K folds of the recordings (grouped and stratified by class like the "
           "split) and choosing its model on the rest's validation split, then a folds summary with the mean and "
           "spread of every measure (default 0: one run)", rule=(lambda v: v == 0 or v >= 2, "must be 0 or >= 2"),
        metavar="K")
    fold: int | None = setting(
        None, "with --folds K, run fold N (1..K) only, e.g. one fold per task of a job array (default: every fold "
              "in turn)", metavar="N", rule=AT_LEAST_ONE)
    n_fft: int = setting(N_FFT, "STFT size", rule=(lambda v: v >= 2, "must be >= 2"))
    hop_length: int = setting(HOP_LENGTH, "STFT hop", rule=AT_LEAST_ONE)

    @property
    def class_list(self) -> list[str]:
        return (self.classes or ",".join(CLASSES)).split(",")

    @property
    def subsets(self) -> list[str]:
        """The run's subsets, `<material>_<frequency>`: one per material and frequency it pools (one if it pools
        none)."""
        return subset_names(self.material, self.frequency or "")

    @property
    def seq_list(self) -> list[str] | None:
        """The selected sequence numbers, None for all."""
        return None if self.seqs == "all" else [s.strip() for s in self.seqs.split(",") if s.strip()]


@dataclass(frozen=True)
class ModelConfig:
    """What scores a spectrogram, and how a batch of pairs goes through it."""
    name: str = setting("onset_residual", "the ranker: onset_residual, the logistic baseline on the recordings' "
                        "physical features plus a learned residual from the spectrogram (the small CNN) and from the "
                        "tone's envelope around its start and stop (docs/evidence.md); baseline_residual, the same "
                        "without the envelope; simple_cnn, the original CNN", flag="--model", choices=MODEL_NAMES)
    pair_forward: str = setting(
        "separate", "separate: model(x1), model(x2) (the small CNNs convolve a repeated recording once, with the "
                    "same result); unique: each distinct recording of a batch once, BatchNorm then sees each once",
        choices=PAIR_FORWARDS)


@dataclass(frozen=True)
class LossConfig:
    """The ranking loss, GHM's options, and which GHM statistics are recorded."""
    type: str = setting("ghm", "the ranking loss", flag="--loss-type", choices=LOSS_TYPES)
    margin: float = setting(MARGIN, "margin of the ranking loss", rule=POSITIVE)
    bins: int = setting(GHM_BINS, "GHM difficulty bins", flag="--ghm-bins")
    alpha: float = setting(GHM_ALPHA, "GHM density exponent, bin weight ∝ density^-alpha; 0 is the standard loss, "
                                      "1 the GHM paper's weighting (not the paper's α = 0.75, which is "
                                      "--ghm-momentum)", flag="--ghm-alpha")
    momentum: float = setting(GHM_MOMENTUM, "moving average of the bin counts, S = M·S + (1−M)·count, started from "
                                            "the first batch; the GHM paper's α (0.75 there); 0: each batch's own "
                                            "counts", flag="--ghm-momentum")
    temperature: float | None = setting(None, "difficulty g = sigmoid((margin − t·(s1 − s2)) / T) (default: "
                                              "margin / 4)", flag="--ghm-temperature")
    max_weight: float = setting(GHM_MAX_WEIGHT, "no pair weighs more than this (weights average 1 per batch); inf: "
                                                "no cap", flag="--ghm-max-weight")
    stats: bool = setting(False, "with --loss-type standard: record the GHM statistics (and the weights GHM would "
                                 "give) without changing training", flag="--ghm-stats")
    stats_batches: str = setting(
        "first,last", "which training batches of each epoch get a statistics file: a comma list of first, last, "
                      "all, every:N", flag="--ghm-stats-batches",
        rule=(stats_batches_valid, "must be a comma list of first, last, all, every:N (N >= 1)"))


@dataclass(frozen=True)
class OptimConfig:
    """How long and how the weights are trained, and what chooses the best model."""
    epochs: int = setting(EPOCHS, "training epochs", rule=AT_LEAST_ONE, resumable=True)
    batch_size: int = setting(BATCH_SIZE, "pairs per batch", rule=AT_LEAST_ONE)
    optimizer: str = setting("adam", "the optimiser: Adam, AdamW (decoupled weight decay) or SGD", choices=OPTIMIZERS)
    learning_rate: float | None = setting(
        None, "the optimiser's learning rate (default: the model's, "
              + ", ".join(f"{rate:g} for {name}" for name, rate in MODEL_LEARNING_RATES.items())
              + f", {LEARNING_RATE:g} for the others)", rule=POSITIVE)
    weight_decay: float = setting(WEIGHT_DECAY, "weight decay (L2 for Adam and SGD, decoupled for AdamW)",
                                  rule=NOT_NEGATIVE_FINITE)
    momentum: float = setting(0.9, "SGD's momentum", rule=(finite(0, 1), "must be >= 0 and < 1"))
    nesterov: bool = setting(False, "SGD with Nesterov momentum")
    scheduler: str = setting(
        "plateau", "the learning-rate schedule after the warm-up: plateau (halve after --plateau-patience epochs "
                   "without a better validation loss), cosine (down to --min-learning-rate over the remaining "
                   "epochs), step (times --step-gamma every --step-size epochs) or none", choices=SCHEDULERS)
    plateau_patience: int = setting(3, "plateau: epochs without improvement before the rate is halved",
                                    rule=NOT_NEGATIVE)
    step_size: int = setting(10, "step: epochs between two decays", rule=AT_LEAST_ONE)
    step_gamma: float = setting(0.5, "step: the factor of each decay", rule=(finite(0, 1, low_open=True),
                                                                            "must be > 0 and < 1"))
    min_learning_rate: float = setting(0.0, "cosine: the learning rate it ends at", rule=NOT_NEGATIVE_FINITE)
    warmup_epochs: int = setting(0, "epochs of linear warm-up, the rate rising to --learning-rate, before the "
                                    "schedule starts", rule=NOT_NEGATIVE)
    grad_clip_norm: float | None = setting(None, "clip the gradients' global norm to this (default: no clipping)",
                                           rule=POSITIVE)
    monitor: str = setting(
        "val_loss", "what chooses model_best.pt and the model the final evaluation reports: val_loss (the training "
                    "loss on the validation pairs, as the learning-rate schedule uses), val_margin_loss (the plain "
                    "margin loss, unweighted also in GHM runs) or val_accuracy", choices=MONITORS)
    early_stop_patience: int = setting(0, "stop when --monitor has not improved for N epochs (default 0: never)",
                                       rule=NOT_NEGATIVE)


@dataclass(frozen=True)
class RunOutputConfig:
    """The run's seed, folder and files, and what it reports while it runs."""
    seed: int = setting(SEED, "seeds the split, the pairs, the weights and every random draw of the run",
                        rule=(lambda v: 0 <= v <= 2**32 - 1, "must be between 0 and 2**32 - 1"))
    save_dir: str = setting(SAVE_DIR, "where outputs go")
    run_name: str | None = setting(
        None, "a fixed run folder, <save-dir>/model_checkpoints/NAME (with --frequency all, NAME_<frequency> each); "
              "the same command again resumes the run from its newest checkpoint, or reports it if it has finished: "
              "for requeued cluster jobs (default: <material>_<frequency>_<loss>…_<timestamp>, a new folder each "
              "time)", metavar="NAME")
    checkpoint_interval: int = setting(CHECKPOINT_INTERVAL, "save a checkpoint every N epochs and after the last",
                                       rule=AT_LEAST_ONE, resumable=True)
    resume: str | None = setting(
        None, "continue a run from a checkpoint, or from a run folder's newest one, in that run's folder; the flags "
              "that may change are listed under --help's groups as 'resumable'", metavar="PATH", resumable=True)
    verify_consistency: bool = setting(False, "record the first three training batches and compare with an earlier "
                                              "record")
    progress: bool = setting(True, "progress bars on a terminal", resumable=True)
    logger: str = setting(
        "csv", "where the run's figures go, comma-separated: csv (metrics.csv, always written), tensorboard (event "
               "files in <run>/tensorboard/, with the GHM histograms; --tensorboard is its alias), mlflow (a file "
               "store in <run>/mlruns/, or the server MLFLOW_TRACKING_URI names), wandb (Weights & Biases; "
               "WANDB_MODE=offline needs no network); each but csv needs its package, requirements-<name>.txt",
        metavar="NAMES", rule=(lambda v: set(v.split(",")) <= set(LOGGERS),
                               f"must be names from {', '.join(LOGGERS)} separated by commas"), resumable=True)
    profile: bool = setting(False, "print where the run's time went at its end: start-up, training steps, loader "
                                   "and per-batch hooks, validation, epoch outputs, final evaluation", resumable=True)

    def trackers(self) -> tuple[str, ...]:
        """--logger's names besides csv (which is always written), each once, in the order given."""
        return tuple(dict.fromkeys(name for name in self.logger.split(",") if name != "csv"))


@dataclass(frozen=True)
class DeviceConfig:
    """Where and how the computation runs."""
    device: str = setting("auto", "auto: CUDA, then MPS, then CPU", choices=DEVICES, resumable=True)
    deterministic: bool = setting(
        False, "on CUDA: deterministic kernels and no cuDNN autotuning, so that the same run repeats bit for bit "
               "(slower); runs on the CPU repeat without it (default: autotuning)")
    amp: str = setting("off", "mixed precision for the model (autocast); fp16 with gradient scaling; the losses and "
                              "GHM statistics stay float32", choices=AMP_MODES)
    sync_bn: bool = setting(False, "under torchrun: BatchNorm statistics over all processes' batches (CUDA only)")
    threads: int = setting(
        0, "CPU threads for PyTorch's operations; runs side by side (a sweep with JOBS > 1) should share the cores "
           "instead of each taking all (default 0: PyTorch's own choice, all cores; torchrun sets 1 per process "
           "unless OMP_NUM_THREADS says otherwise)", rule=NOT_NEGATIVE, resumable=True)
    num_workers: int = setting(0, "data loader worker processes", rule=NOT_NEGATIVE, resumable=True)
    data_on_device: bool = setting(
        False, "keep the spectrograms on the training device (a GPU) and gather each batch there, instead of "
               "copying every batch from the host; for data sets that fit in its memory", resumable=True)
    skip_memory_check: bool = setting(
        False, "train even when the estimated peak memory of a training step exceeds the memory available "
               "(default: stop before training with the estimate and the largest batch size that fits)",
        resumable=True)


# (attribute of RunConfig, its --help group)
SECTIONS = {"data": (DataConfig, "data"), "model": (ModelConfig, "model"), "loss": (LossConfig, "loss and GHM"),
            "optim": (OptimConfig, "optimisation"), "run": (RunOutputConfig, "run and outputs"),
            "devices": (DeviceConfig, "devices")}


def flag_of(f: Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def key_of(f: Field) -> str:
    """The setting's name in stored arguments and config files: its flag without dashes."""
    return flag_of(f)[2:].replace("-", "_")


def settings() -> Iterator[tuple[str, Field]]:
    """(section attribute, field) of every setting, section by section."""
    for section, (cls, _) in SECTIONS.items():
        for f in fields(cls):
            yield section, f


KEYS = {key_of(f): (section, f) for section, f in settings()}
RESUMABLE = tuple(key for key, (_, f) in KEYS.items() if f.metadata["resumable"])


@dataclass(frozen=True)
class RunConfig:
    """One run's settings, a section per concern."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunOutputConfig = field(default_factory=RunOutputConfig)
    devices: DeviceConfig = field(default_factory=DeviceConfig)

    def __post_init__(self) -> None:
        if self.optim.learning_rate is None:  # not given: the model's own
            rate = MODEL_LEARNING_RATES.get(self.model.name, LEARNING_RATE)
            object.__setattr__(self, "optim", replace(self.optim, learning_rate=rate))

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> "RunConfig":
        """From stored arguments in today's format (`migrate` first); settings not given keep their defaults."""
        if unknown := sorted(set(values) - set(KEYS)):
            raise ValueError(f"unknown key {unknown[0]!r}")
        parts = {section: {} for section in SECTIONS}
        for key, value in values.items():
            section, f = KEYS[key]
            parts[section][f.name] = (Exclusions(value["sha256"], tuple(value["entries"]))
                                      if Exclusions.plain_fits(value) else value)
        return cls(**{section: SECTIONS[section][0](**parts[section]) for section in SECTIONS})

    def flat(self) -> dict[str, Any]:
        """Every setting by its stored name, in section order: what checkpoints, histories and summaries keep."""
        return {key: getattr(getattr(self, section), f.name) for key, (section, f) in KEYS.items()}

    def with_values(self, **values: Any) -> "RunConfig":
        """A copy with some settings (by stored name) replaced."""
        return RunConfig.from_flat({**self.flat(), **values})



def defaults() -> dict[str, Any]:
    """Every setting's default by stored name; the learning rate's is None, the model's own (RunConfig)."""
    return {key: f.default for key, (_, f) in KEYS.items()}


def stored(config: RunConfig) -> dict[str, Any]:
    """The arguments a run stores (checkpoints, history, summary.json, config.yaml): plain values, versioned."""
    return {"format_version": CONFIG_FORMAT, **{key: value.plain() if isinstance(value, Exclusions) else value
                                                for key, value in config.flat().items()}}


# What a stored run that predates a setting trained with, where that is not the setting's default today.
LEGACY_DEFAULTS = {"classes": ",".join(CLASSES), "model": "simple_cnn"}
CORE_KEYS = ("data_root", "material", "frequency", "seed")  # stored arguments without these are not a run's


def from_stored(saved: Mapping[str, Any]) -> RunConfig:
    """A run's configuration from its stored arguments (a checkpoint's, a history's, a summary's): migrated, each
    value checked against its setting; ValueError saying what is wrong."""
    values = migrate(saved)
    if missing := [key for key in CORE_KEYS if key not in values]:
        raise ValueError(f"its args lack {', '.join(missing)}")
    if wrong := next((key for key, value in values.items() if not value_fits(key, value)), None):
        raise ValueError(f"its args hold {wrong} = {values[wrong]!r}")
    config = RunConfig.from_flat({**defaults(), **LEGACY_DEFAULTS, **values})
    if problems := value_problems(config):  # the same rules as the flags
        flag, problem = problems[0]
        raise ValueError(f"its args hold {flag} = {values.get(flag[2:].replace('-', '_'))!r}, which {problem}")
    return config


def migrate(saved: Mapping[str, Any]) -> dict[str, Any]:
    """Stored arguments of any format (checkpoints, histories, config.yaml files) in today's names and values,
    without the version; ValueError for a newer format or a setting this program does not know."""
    values = dict(saved)
    version = values.pop("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= CONFIG_FORMAT:
        raise ValueError(f"format_version {version!r} is not one this program reads (1 to {CONFIG_FORMAT})")
    if version < 4 and isinstance(values.get("tensorboard"), bool):
        values["logger"] = "csv,tensorboard" if values.pop("tensorboard") else "csv"
    if version < 3 and isinstance(values.get("exclude_recordings"), list):
        values["exclude_recordings"] = Exclusions.of([str(e) for e in values["exclude_recordings"]]).plain()
    if version < 2:
        if isinstance(values.get("demo"), bool):
            values["demo"] = "synthetic" if values["demo"] else None
        if "no_progress" in values:
            values["progress"] = not values.pop("no_progress") if isinstance(values["no_progress"], bool) \
                else values.pop("no_progress")
    if unknown := sorted(set(values) - set(KEYS), key=str):
        raise ValueError(f"unknown key {unknown[0]!r}")
    return values


def field_kinds(f: Field) -> tuple:
    """The types a setting's value may have (`int | None` → int, NoneType)."""
    return get_args(f.type) if isinstance(f.type, UnionType) or get_origin(f.type) is Union else (f.type,)


def value_fits(key: str, value: Any) -> bool:
    """Whether `value` has the type (and lies among the choices) of setting `key`."""
    f = KEYS[key][1]
    kinds = field_kinds(f)
    if value is None:
        return type(None) in kinds
    if Exclusions in kinds:
        return isinstance(value, Exclusions) or Exclusions.plain_fits(value)
    if isinstance(value, list):
        fits = any(get_origin(kind) is list for kind in kinds) and all(isinstance(v, str) for v in value)
    elif isinstance(value, bool):
        fits = bool in kinds
    else:
        fits = isinstance(value, tuple(kind for kind in kinds if kind is not type(None) and get_origin(kind) is None))
        fits = fits or isinstance(value, int) and float in kinds
    choices = f.metadata["choices"]
    return fits and (choices is None or value in choices)


def value_problems(config: RunConfig) -> list[tuple[str, str]]:
    """(flag, what it must be) for each setting whose value breaks its rule."""
    problems = []
    for key, (section, f) in KEYS.items():
        value, rule = getattr(getattr(config, section), f.name), f.metadata["rule"]
        if rule is not None and value is not None and not rule[0](value):
            problems.append((flag_of(f), rule[1]))
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting as a flag, one argument group per section. The flags have no defaults (argparse.SUPPRESS), so
    that the namespace holds only what the command line gave; the defaults come from the fields."""
    for section, (cls, title) in SECTIONS.items():
        group = parser.add_argument_group(title, cls.__doc__)
        for f in fields(cls):
            group.add_argument(flag_of(f), dest=key_of(f), default=argparse.SUPPRESS, **flag_options(f))


def flag_options(f: Field) -> dict[str, Any]:
    meta = f.metadata
    shown = "" if "(default" in meta["help"] or f.default is None else f" (default: {f.default})"
    help_text = meta["help"] + shown + (" [resumable]" if meta["resumable"] else "")
    options: dict[str, Any] = {"help": help_text.replace("%", "%%"), "metavar": meta["metavar"]}
    if f.type is bool:
        return {**options, "action": argparse.BooleanOptionalAction, "metavar": None}
    kinds = [k for k in field_kinds(f) if k is not type(None)]
    options["type"] = meta["parse"] or kinds[0]
    if meta["choices"] is not None:
        options["choices"] = meta["choices"]
    if meta["const"] is not None:
        options.update(nargs="?", const=meta["const"])
    return options


def to_yaml(config: RunConfig) -> str:
    """`stored(config)` as YAML, a comment before each section: what config.yaml holds and --print-config shows;
    --config reads it back (the comments aside, a flat mapping of setting names). Never `resume`: the file
    describes a run's configuration, which it starts anew anywhere; continuing a run is --resume's job."""
    import yaml

    values = stored(config)
    lines = [yaml.safe_dump({"format_version": values["format_version"]}, sort_keys=False)]
    for section, (_, title) in SECTIONS.items():
        part = {key: values[key] for key, (owner, _) in KEYS.items() if owner == section and key != "resume"}
        lines.append(f"# {title}\n" + yaml.safe_dump(part, sort_keys=False, allow_unicode=True))
    return "".join(lines)

