"""torchrun / DistributedDataParallel: process-group set-up and the few collectives training needs.

Launched by `torchrun`, a process finds RANK, LOCAL_RANK and WORLD_SIZE in its environment; without them
everything here is a no-op for one process.
"""

import os
import sys
import warnings

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo otherwise); each CUDA process takes its local GPU."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not is_main():  # rank 0 reports what every rank sees
        warnings.simplefilter("ignore")
        sys.stdout = open(os.devnull, "w")
    return device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over all processes (float64), e.g. an epoch's loss sums and pair counts."""
    if not active():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR over all processes, so that every rank takes the same decision."""
    return [v > 0 for v in sum_over_ranks([float(f) for f in flags], device)]


def broadcast_from_main(obj):
    """Rank 0's value of a picklable object, on every rank."""
    if not active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_to_main(obj) -> list | None:
    """Every rank's object, in rank order, on rank 0 (None elsewhere)."""
    if not active():
        return [obj]
    gathered = [None] * world_size() if is_main() else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
