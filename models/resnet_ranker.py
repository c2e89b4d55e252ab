"""Rankers: a spectrogram `[B, 1, F, T]` in, one score per spectrogram `[B]` out."""

from collections.abc import Callable, Sequence

import torch
from torch import nn

from audio_data.pairs import batch_rows, pair_halves, stacked
from models import fused_kernels
from models.common import GlobalPool, rows_per_chunk, standardize
from models.fused_block import std_conv_bn_relu_pool, std_conv_bn_relu_pool_batches


def score_in_chunks(score: Callable[..., torch.Tensor], x: torch.Tensor, first_conv: nn.Conv2d,
                    features: torch.Tensor | None = None) -> torch.Tensor:
    """`score(x)` (or `score(x, features)`) a few recordings at a time (about CHUNK_BYTES of first-layer output),
    for eval mode on CPU.

    BatchNorm then uses its running statistics, so each recording's score is its own; small chunks keep the
    activations in cache and out of the GB range (docs/performance.md has the figures)."""
    rows = rows_per_chunk(x, first_conv)
    if features is None:
        return torch.cat([score(xc) for xc in x.split(rows)])
    return torch.cat([score(xc, fc) for xc, fc in zip(x.split(rows), features.split(rows))])


class SimpleCNNAudioRanker(nn.Module):
    """The original small CNN: two conv-BN-ReLU-pool blocks, global average pool, a 16→10→1 head."""

    backward_memory_factor = 1.8  # a step's peak over what autograd keeps from forward (training/step_memory.py)
    reads_views = True  # forward and score_pairs take a batch's recordings as a sequence of views `[C, F, T]`

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, stride=(2, 4), padding=2),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 16, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            GlobalPool((2, 3)),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.ReLU(inplace=True), nn.Linear(10, 1))
        # Channels-last weights make the convolutions' outputs channels-last, where BatchNorm and max-pooling
        # are several times faster on CPU.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], features: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Scores `[B]`; `features` `[B, K]`, the recordings' physical features, only for a subclass that reads
        them (`reads_features`)."""
        if self.training and self._fuses(x):
            pooled = self.features[4:](std_conv_bn_relu_pool(x, self.features[0], self.features[1]))
            return self._head(pooled, x, features=features)
        x = stacked(x)
        if not self.training and x.device.type == "cpu":
            return score_in_chunks(self._plain, x, self.features[0], features)
        return self._plain(x, features)

    def score_pairs(self, x: torch.Tensor | Sequence[torch.Tensor], index1: torch.Tensor, index2: torch.Tensor,
                    features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`self(x1), self(x2)` in training mode for the half-batches of a distinct batch x (`models.pair_forward`),
        with the first block's convolution done once per distinct recording: each half-batch keeps its own
        BatchNorm statistics, in which a repeated recording counts as often as it appears. `features`, where
        given, are x's rows' features."""
        if not (self.training and self._fuses(x)):
            (x1, x2), (f1, f2) = pair_halves(x, index1, index2), pair_halves(features, index1, index2)
            return self(x1, f1), self(x2, f2)
        _, slots = batch_rows(index1, index2)
        halves = (slots[:len(index1)], slots[len(index1):])
        blocks = std_conv_bn_relu_pool_batches(x, self.features[0], self.features[1],
                                               [half.tolist() for half in halves])
        s1, s2 = (self._head(self.features[4:](block), x, half, features) for block, half in zip(blocks, halves))
        return s1, s2

    @staticmethod
    def _fuses(x: torch.Tensor | Sequence[torch.Tensor]) -> bool:
        """Whether training takes the fused first block: the same maths as standardize + self.features[:4] in a
        fraction of the memory and time, written for CPU caches and float32 (GPUs and mixed precision take the
        plain path, as do machines without numba, which compiles its element-wise passes)."""
        x = x[0]  # the batch's recordings all alike
        return (x.device.type == "cpu" and torch.is_grad_enabled() and not x.requires_grad
                and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu") and fused_kernels.available())

    def _plain(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self._head(self.features(standardize(x)), x, features=features)

    def _head(self, pooled: torch.Tensor, x: torch.Tensor | Sequence[torch.Tensor], rows: torch.Tensor | None = None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        """The score from the pooled features `[B, 16, 1, 1]` (and, in subclasses, from the input `x` and the
        recordings' `features`, whose row `rows[i]` is pooled's row i when given)."""
        return self.head(pooled).squeeze(1)


class ResNetAudioRanker(nn.Module):
    """torchvision ResNet-18, untrained, with a 1-channel first convolution and a 1-output head."""

    def __init__(self):
        super().__init__()
        # torchvision's import (with torch._dynamo) is a large part of a run's start; only this model needs it
        from torchvision.models import resnet18

        self.net = resnet18(weights=None, num_classes=1)
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net.avgpool = GlobalPool((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and x.device.type == "cpu":
            return score_in_chunks(self._plain, x, self.net.conv1)
        return self._plain(x)

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(standardize(x)).squeeze(1)
