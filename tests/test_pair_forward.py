import pytest
import torch
from conftest import tiny_train_args
from torch import nn

import train
from models import build_model
from models.pair_forward import separate, unique


class CountingMean(nn.Module):
    """Score = mean of the spectrogram; remembers how many spectrograms it saw."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return x.flatten(1).mean(1)


def pair_batch():
    recordings = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 3, 4).contiguous()
    index1, index2 = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 3, 0, 4, 1])
    return recordings[index1], recordings[index2], index1, index2


def test_unique_scores_each_distinct_recording_once_and_gathers_the_pairs():
    x1, x2, index1, index2 = pair_batch()
    model = CountingMean()
    s1, s2 = unique(model, x1, x2, index1, index2)
    assert model.seen == 6
    assert torch.equal(s1, index1.float()) and torch.equal(s2, index2.float())


def test_unique_equals_separate_in_eval_mode():
    torch.manual_seed(0)
    model = build_model("simple_cnn").eval()
    recordings = torch.randn(6, 1, 65, 40)
    index1, index2 = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 3, 0, 4, 1])
    with torch.no_grad():
        a = separate(model, recordings[index1], recordings[index2], index1, index2)
        b = unique(model, recordings[index1], recordings[index2], index1, index2)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_cli_trains_with_unique_pair_forward(tiny_data, tmp_path):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1",
                                      "--pair-forward", "unique")) == 0
