"""Will a training step fit in memory? An estimate from a small probe forward, checked before training starts.

A step's peak is dominated by what autograd keeps from forward to backward, which grows with the number of
spectrograms and their area. The probe runs the model's own training forward (the fused or the plain path,
under the run's autocast) on two and on four spectrograms of a quarter of the height and width, counts the bytes of the
tensors autograd saves, and scales them to the step:

    peak ≈ factor · saved + 3 · parameter bytes (gradients, Adam's two moments) + FIXED_BYTES

The factor covers the gradients that exist beside the saved tensors in backward: BACKWARD_FACTOR, or a model's own
`backward_memory_factor` (the small CNN's fused first block keeps little from forward and makes the gradient of its
whole output in backward). tests/test_step_memory.py measures the estimate against real peaks.
"""

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from config import ModelConfig
from models import check_input_size
from models.common import score_probe
from utils.errors import InputError

BACKWARD_FACTOR = 1.5
HEADROOM = 0.85  # the share of the available memory a step may take: the rest for the heap's growth over steps
FIXED_BYTES = 128 * 2**20  # the first backward's buffers, the fused block's chunks, the loss, allocator slack
GB = 1e9


@dataclass
class StepMemory:
    """A training step's estimated peak in bytes: `fixed` plus `per_pair` for each pair of the batch."""
    fixed: float
    per_pair: float

    def peak(self, batch_size: int) -> float:
        return self.fixed + self.per_pair * batch_size

    def largest_batch(self, available: float) -> int:
        return max(0, math.floor((available - self.fixed) / self.per_pair))


def probe_shape(model_name: str, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """A quarter of the height and width of `shape` [1, F, T], or `shape` itself if the model needs more."""
    small = (shape[0], max(1, shape[1] // 4), max(1, shape[2] // 4))
    try:
        check_input_size(model_name, small)
    except InputError:
        return shape
    return small


def saved_bytes(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None) -> int:
    """Bytes of the distinct storages besides the weights that autograd keeps from a training forward of x through
    a copy of `model` (the copy, so that BatchNorm's running statistics stay as they are)."""
    probe = copy.deepcopy(model).train()
    weights = {p.untyped_storage().data_ptr() for p in probe.parameters()}
    storages = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        score_probe(probe, x)
    return sum(storages.values())


def estimate(model: nn.Module, model_name: str, shape: tuple[int, int, int], recordings_per_pair: float,
             device: torch.device, amp_dtype: torch.dtype | None = None) -> StepMemory:
    """The step's peak for spectrograms of `shape` [1, F, T], each pair sending `recordings_per_pair`
    spectrograms through the model (2 with model(x1), model(x2); fewer when recordings repeat).

    Probes of two and of four spectrograms separate what grows with the batch from what autograd keeps once per
    step (under autocast, the weights' low-precision copies), which must not be scaled with the batch. Two, not
    one: training-mode BatchNorm needs more than one value per channel, and the ResNet-18's last maps of a small
    probe are 1 × 1."""
    small = probe_shape(model_name, shape)
    x = torch.randn(4, *small, generator=torch.Generator().manual_seed(0)).to(device)
    two, four = saved_bytes(model, x[:2], amp_dtype), saved_bytes(model, x, amp_dtype)
    per_recording = (four - two) / 2 * math.prod(shape) / math.prod(small)
    once = max(0, 2 * two - four)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    factor = getattr(model, "backward_memory_factor", BACKWARD_FACTOR)
    return StepMemory(3 * parameters + once + FIXED_BYTES, factor * per_recording * recordings_per_pair)


def _cgroup_available() -> float:
    """What the cgroup (v2) still allows this process, or infinity without a limit."""
    limit = Path("/sys/fs/cgroup/memory.max")
    try:
        maximum = limit.read_text().strip()
        if maximum == "max":
            return math.inf
        return int(maximum) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return math.inf


def available_bytes(device: torch.device) -> float:
    """Memory a step may still take on `device`: free GPU memory, or on the CPU MemAvailable (within the cgroup's
    limit) shared by the processes of this host under torchrun; infinity where unknown."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return math.inf
    fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
    if "MemAvailable" not in fields:
        return math.inf
    available = min(int(fields["MemAvailable"].split()[0]) * 1024, _cgroup_available())
    return available / int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def check_step_memory(settings: ModelConfig, batch: int, model: nn.Module, shape: tuple[int, int, int],
                      train_recordings: int, device: torch.device, amp_dtype: torch.dtype | None) -> StepMemory:
    """InputError with the estimate and the largest --batch-size that fits, when a step of `batch` pairs through
    `model` (built from `settings`) would not fit."""
    per_pair = 2.0 if settings.pair_forward == "separate" else min(2.0, train_recordings / batch)
    memory = estimate(model, settings.name, shape, per_pair, device, amp_dtype)
    available = available_bytes(device)
    if memory.peak(batch) > HEADROOM * available:
        largest = memory.largest_batch(HEADROOM * available)
        advice = (f"the largest batch that fits is --batch-size {largest}" if largest else
                  "not even --batch-size 1 fits: use shorter recordings, a larger --hop-length or a smaller model")
        raise InputError(f"--batch-size {batch}: a training step of --model {settings.name} on "
                         f"{shape[1]} × {shape[2]} spectrograms needs about {memory.peak(batch) / GB:.1f} GB "
                         f"(estimate), more than {HEADROOM:.0%} of the {available / GB:.1f} GB available on "
                         f"{device.type}; {advice} "
                         "(--skip-memory-check trains anyway)")
    return memory
