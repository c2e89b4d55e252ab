"""Checkpoint files: finding and loading them safely, and the random states a resumed run needs."""

import random
import re
from pathlib import Path

import numpy as np
import torch

from utils.errors import InputError

CHECKPOINT_NAME = re.compile(r"model_epoch_(\d+)\.pt")


def checkpoint_epoch(path: Path) -> int | None:
    match = CHECKPOINT_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def newest_checkpoint(path: str | Path, flag: str) -> Path:
    """`path` itself if it is a file; for a run folder, its checkpoint of the highest epoch."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(f"{flag} {path}: file not found (nor a run folder)")
    epochs = {checkpoint_epoch(p): p for p in path.glob("model_epoch_*.pt") if checkpoint_epoch(p) is not None}
    if not epochs:
        raise InputError(f"{flag} {path}: the folder holds no model_epoch_<N>.pt checkpoint")
    return epochs[max(epochs)]


def load_checkpoint(path: Path, flag: str, required: tuple[str, ...] = ("model_state_dict", "args")) -> dict:
    """A train.py checkpoint, loaded with weights_only=True; one clear InputError for anything else."""
    if not path.is_file():
        raise InputError(f"{flag} {path}: file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise InputError(f"{flag} {path}: cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or not set(required) <= set(checkpoint):
        missing = ", ".join(sorted(set(required) - set(checkpoint if isinstance(checkpoint, dict) else ())))
        raise InputError(f"{flag} {path}: not a train.py checkpoint of this kind (missing {missing})")
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
