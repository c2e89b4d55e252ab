"""Seeding, loader-worker seeding, device choice and the choice of CUDA algorithms."""

import os
import random

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Seed a loader worker's Python and numpy from the seed torch gave it (itself from the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def device_available(name: str) -> bool:
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        return torch.backends.mps.is_available()
    return name == "cpu"


def choose_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; a named device must be available."""
    if name == "auto":
        name = next(n for n in ("cuda", "mps", "cpu") if device_available(n))
    if not device_available(name):
        raise ValueError(f"device {name!r} is not available on this machine")
    return torch.device(name)


def choose_algorithms(device: torch.device, deterministic: bool) -> None:
    """On CUDA, cuDNN's autotuning (the spectrograms keep one size, so it pays after the first step), or with
    `deterministic` deterministic kernels only and no autotuning, so that a run repeats bit for bit. Runs on the
    CPU repeat either way. Call before the first CUDA operation: cuBLAS reads its workspace setting once."""
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic)
