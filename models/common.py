"""What the rankers share: per-spectrogram standardisation, the chunk size for working through a batch a few
recordings at a time (the fused block in training, eval-mode scoring on the CPU), and the call that hands a model
the recordings' physical features when it reads them."""

import torch
from torch import nn

from audio_data.tone_features import FEATURES

EPS = 1e-5
CHUNK_BYTES = 32 * 2**20  # convolution output per chunk: one recording of the small CNN's first layer at 6 s


def std_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample standard deviation and mean, `[B, 1, 1, 1]` each, in two plain passes (torch.std_mean is much
    slower on one spectrogram on a CPU; docs/performance.md)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = (x - mean).square_().sum(dim=(1, 2, 3), keepdim=True) / max(x[0].numel() - 1, 1)
    return var.sqrt_(), mean


def standardize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Zero mean and unit variance per spectrogram, so a score never depends on the rest of the batch."""
    std, mean = std_mean(x)
    return (x - mean) / (std + eps)


class GlobalPool(nn.Module):
    """Mean (or max) over the trailing `dims`, kept as size-1 dimensions: AdaptiveAvgPool2d(1) and
    AdaptiveMaxPool1d(1) as plain reductions, whose backward is deterministic on CUDA (the adaptive pools'
    raises under torch.use_deterministic_algorithms). No weights, so checkpoints are unchanged."""

    def __init__(self, dims: tuple[int, ...], reduce: str = "mean"):
        super().__init__()
        self.dims, self.reduce = dims, reduce

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims, keepdim=True) if self.reduce == "mean" else x.amax(self.dims, keepdim=True)


def conv_output_size(x: torch.Tensor, conv: nn.Conv2d) -> tuple[int, int]:
    return tuple((x.shape[2 + d] + 2 * conv.padding[d] - conv.dilation[d] * (conv.kernel_size[d] - 1) - 1)
                 // conv.stride[d] + 1 for d in (0, 1))


def rows_per_chunk(x: torch.Tensor, conv: nn.Conv2d) -> int:
    """Recordings per chunk: about CHUNK_BYTES of `conv`'s output, at least one."""
    out_h, out_w = conv_output_size(x, conv)
    return max(1, CHUNK_BYTES // (conv.out_channels * out_h * out_w * x.element_size()))


def reads_features(model: nn.Module) -> bool:
    """Whether `model` scores from the recordings' physical features (audio_data/tone_features.py) too."""
    return getattr(model, "reads_features", False)


def starts_as_baseline(model: nn.Module) -> bool:
    """Whether `model` before its first step is a fitted simple baseline (models/baseline_residual.py): a ranker
    in its own right, and so a candidate for the best model (training/fit.py, epoch 0)."""
    return getattr(model, "starts_as_baseline", False)


def score(model: nn.Module, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    """model(x), or model(x, features) for a model that reads the recordings' physical features `[B, K]`."""
    if not reads_features(model):
        return model(x)
    if features is None:
        raise ValueError(f"{type(model).__name__} scores from the recordings' physical features; none were given")
    return model(x, features)


def score_probe(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """score(model, x) with all-zero features where the model reads them: for probes of shapes and memory."""
    return score(model, x, torch.zeros(len(x), getattr(model, "inputs_beside", len(FEATURES)), device=x.device))
