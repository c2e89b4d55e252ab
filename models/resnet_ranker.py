"""Rankers: a spectrogram `[B, 1, F, T]` in, one score per spectrogram `[B]` out."""

import torch
from torch import nn
from torchvision.models import resnet18


def standardize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean and unit variance per spectrogram, so a score never depends on the rest of the batch."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


class SimpleCNNAudioRanker(nn.Module):
    """The original small CNN: two conv-BN-ReLU-pool blocks, global average pool, a 16→10→1 head."""

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
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.ReLU(inplace=True), nn.Linear(10, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(standardize(x))).squeeze(1)


class ResNetAudioRanker(nn.Module):
    """torchvision ResNet-18, untrained, with a 1-channel first convolution and a 1-output head."""

    def __init__(self):
        super().__init__()
        self.net = resnet18(weights=None, num_classes=1)
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(standardize(x)).squeeze(1)
