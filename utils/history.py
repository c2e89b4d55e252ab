"""The training history: per-epoch losses and accuracies, their plot and their table (metrics.csv)."""

import csv
import io
import math
from pathlib import Path


from config import OptimConfig
from utils.errors import InputError
from utils.io_utils import MB, atomic_path, format_problem, read_regular
from utils.plotting import save_figure, subplots

# What run_epoch returns for a split, recorded per epoch as `<split>_<metric>`.
EPOCH_METRICS = ("loss_main", "loss_standard_log", "accuracy")
HISTORY_KEYS = ("epoch", *(f"{split}_{metric}" for split in ("train", "val") for metric in EPOCH_METRICS))


HISTORY_FORMAT = 2  # 1: histories without a format_version entry; 2: with it (2026-11-26)


def new_history(args: dict) -> dict:
    """An empty history; `args`, the run's stored settings (config.stored), are kept in it."""
    history = {key: [] for key in HISTORY_KEYS}
    history["args"] = args
    history["format_version"] = HISTORY_FORMAT
    return history


def record_epoch(history: dict, epoch: int, train: dict, val: dict) -> None:
    history["epoch"].append(epoch)
    for split, metrics in (("train", train), ("val", val)):
        for metric in EPOCH_METRICS:
            history[f"{split}_{metric}"].append(metrics[metric])


METRICS_COLUMNS = (*HISTORY_KEYS, "lr", "seconds")


def write_metrics(path: Path, history: dict, lr: float, seconds: float) -> None:
    """metrics.csv, one row per epoch of `history`: its figures, and the learning rate and seconds of the epoch
    (this epoch's given; earlier ones kept from the file, blank where it has none, as after resuming a run
    from before metrics.csv existed). Written atomically."""
    earlier = {}
    try:
        text = read_regular(path, 64 * MB).decode("utf-8")
        earlier = {row.get("epoch"): row for row in csv.DictReader(io.StringIO(text, newline=""))}
    except (InputError, csv.Error, UnicodeDecodeError, ValueError):
        pass
    rows = []
    for i, epoch in enumerate(history["epoch"][:-1]):
        old = earlier.get(str(epoch), {})
        rows.append([*(history[key][i] for key in HISTORY_KEYS), old.get("lr"), old.get("seconds")])
    rows.append(list(last_epoch_row(history, lr, seconds).values()))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(METRICS_COLUMNS)
        writer.writerows(rows)


def last_epoch_row(history: dict, lr: float, seconds: float) -> dict:
    """metrics.csv's row of the history's last epoch, by column."""
    return {**{key: history[key][-1] for key in HISTORY_KEYS}, "lr": lr, "seconds": round(seconds, 3)}


def best_epoch(history: dict, key: str, pick=max) -> tuple[float | None, int | None]:
    """The best value (`pick`: max or min) of the history's list `key` and its epoch, NaN epochs skipped; (None,
    None) if none."""
    finite = [(v, i) for i, v in enumerate(history[key]) if not math.isnan(v)]
    if not finite:
        return None, None
    value, index = pick(finite)
    return value, history["epoch"][index]


def epochs_done(history: dict) -> int:
    """The last epoch trained (0 before the first; a baseline-residual run's history also holds epoch 0, the
    model before training)."""
    return history["epoch"][-1] if history["epoch"] else 0


# --monitor: the history list that chooses model_best.pt, and whether lower is better.
MONITORS = {"val_loss": ("val_loss_main", True), "val_margin_loss": ("val_loss_standard_log", True),
            "val_accuracy": ("val_accuracy", False)}


def monitor_best(history: dict, monitor: str) -> tuple[float | None, int | None]:
    """The best value of `monitor` (--monitor) and the first epoch that reached it (None, None before any epoch).

    Later epochs that only equal it are not improvements, so model_best.pt stays the earliest best model."""
    key, lower = MONITORS[monitor]
    values = [v if lower else -v for v in history[key]]
    finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
    if not finite:
        return None, None
    value, index = min(finite)
    return (value if lower else -value), history["epoch"][index]


def early_stop_reason(history: dict, optim: OptimConfig) -> str | None:
    """Why --early-stop-patience ends the run after its last recorded epoch, or None if it goes on."""
    patience = optim.early_stop_patience
    best, best_at = monitor_best(history, optim.monitor)
    if not patience or best_at is None or history["epoch"][-1] - best_at < patience:
        return None
    return f"early stop: {optim.monitor} has not improved for {patience} epochs (best {best:.4f} at epoch {best_at})"


def history_problem(history) -> str | None:
    """What makes `history` not a training history (None if it is one): the lists, equally long, of numbers."""
    if not isinstance(history, dict) or not isinstance(history.get("args"), dict):
        return "not a dict with the run's args"
    if problem := format_problem(history, HISTORY_FORMAT):
        return problem
    missing = [key for key in HISTORY_KEYS if not isinstance(history.get(key), list)]
    if missing:
        return f"lacks the lists {', '.join(missing)}"
    if len({len(history[key]) for key in HISTORY_KEYS}) > 1:
        return "its lists differ in length"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for key in HISTORY_KEYS for v in history[key]):
        return "holds a value that is not a number"
    return None


def plot_history(history: dict, path: str, title: str) -> None:
    """Loss curves (main and logged standard loss) and accuracy curves, train and validation."""
    epochs = history["epoch"]
    fig, (loss_ax, acc_ax) = subplots(1, 2, figsize=(11, 4))
    for split, color in (("train", "tab:blue"), ("val", "tab:orange")):
        loss_ax.plot(epochs, history[f"{split}_loss_main"], "o-", color=color, label=f"{split} (main)")
        loss_ax.plot(epochs, history[f"{split}_loss_standard_log"], "--", color=color,
                     label=f"{split} (standard margin)")
        acc_ax.plot(epochs, history[f"{split}_accuracy"], "o-", color=color, label=split)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="pairwise accuracy", title="Pairwise accuracy", ylim=(0, 1))
    acc_ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)
