"""Checkpoint files: finding and loading them safely, and the random states a resumed run needs."""

import random
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

import config
from config import RunConfig

from utils.errors import InputError
from utils.io_utils import format_problem
from utils.run_paths import epoch_checkpoints

def newest_checkpoint(path: str | Path, flag: str) -> Path:
    """`path` itself if it is a file; for a run folder, its checkpoint of the highest epoch."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(f"{flag} {path}: file not found (nor a run folder)")
    epochs = epoch_checkpoints(path)
    if not epochs:
        raise InputError(f"{flag} {path}: the folder holds no model_epoch_<N>.pt checkpoint")
    return epochs[max(epochs)]


# 1: checkpoints without a format_version entry; 2: with it (2026-11-26). Readers take every version up to this.
CHECKPOINT_FORMAT = 2


@dataclass
class ResumeState:
    """Everything a bit-identical resume needs: the entries of a checkpoint besides its per-epoch figures."""
    epoch: int
    model_state_dict: dict
    optimizer_state_dict: dict
    scheduler_state_dict: dict
    scaler_state_dict: dict
    ghm_state_dict: dict | None
    args: dict
    val_recordings: list
    history: dict
    rng: dict
    loader_rng: list
    run: dict
    elapsed_s: float


RESUME_KEYS = tuple(field.name for field in fields(ResumeState))
KINDS = {field.name: field.type for field in fields(ResumeState)}


def first_sentence(exc: BaseException) -> str:
    """torch's load errors run over several lines; the part that says what is wrong, without terminal codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    match = re.search(r"WeightsUnpickler error: (.*)", text)
    line = (match.group(1) if match else text.strip().split("\n")[0]).strip()
    return line.split(". ")[0].rstrip(".") or type(exc).__name__


def checkpoint_problem(checkpoint: object, required: tuple[str, ...]) -> str | None:
    """What makes a loaded file not a checkpoint of this kind (None if its entries have the right types)."""
    if not isinstance(checkpoint, dict):
        return f"holds a {type(checkpoint).__name__}, not a dict"
    if problem := format_problem(checkpoint, CHECKPOINT_FORMAT):
        return problem
    missing = sorted(set(required) - set(checkpoint))
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = [key for key, kind in KINDS.items() if key in checkpoint and not isinstance(checkpoint[key], kind)]
    epoch = checkpoint.get("epoch", 0)
    if "epoch" not in wrong and (isinstance(epoch, bool) or epoch < 0):
        wrong.append("epoch")
    if wrong:
        return f"{', '.join(wrong)} of the wrong type"
    state = checkpoint.get("model_state_dict", {})
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return "model_state_dict is not a dict of named tensors"
    if not all(isinstance(p, str) for p in checkpoint.get("val_recordings", [])):
        return "val_recordings is not a list of paths"
    return None


def load_checkpoint(path: Path, flag: str, required: tuple[str, ...] = ("model_state_dict", "args")) -> dict:
    """A train.py checkpoint, loaded with weights_only=True; one clear InputError for anything else."""
    if not path.is_file():
        raise InputError(f"{flag} {path}: file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise InputError(f"{flag} {path}: cannot be read as a checkpoint ({first_sentence(exc)})") from None
    if problem := checkpoint_problem(checkpoint, required):
        raise InputError(f"{flag} {path}: not a train.py checkpoint of this kind ({problem})")
    return checkpoint


def capture_rng() -> dict:
    """Python, numpy and torch random states, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def stored_config(checkpoint: dict, flag: str, path: Path, what: str) -> RunConfig:
    """The configuration a checkpoint stores; InputError (`what` the checkpoint is not) when it is unusable."""
    try:
        return config.from_stored(checkpoint["args"])
    except ValueError as exc:
        raise InputError(f"{flag} {path}: not {what} ({exc})") from None


def checkpoint_run(spec: str) -> tuple[Path, dict, RunConfig]:
    """evaluate.py's and predict.py's --checkpoint: the file (or a run folder's newest checkpoint), the checkpoint,
    and the run's configuration."""
    path = newest_checkpoint(spec, "--checkpoint")
    checkpoint = load_checkpoint(path, "--checkpoint")
    return path, checkpoint, stored_config(checkpoint, "--checkpoint", path, "a train.py checkpoint")
