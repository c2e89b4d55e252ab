import copy

import pytest
import torch
from conftest import tiny_train_args
from test_fused_block import assert_grads_close
from torch import nn

import train
from models import build_model, resnet_ranker
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
    """A distinct batch (audio_data.pairs): recording r is the constant r."""
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 3, 4).contiguous()
    return x, torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 3, 0, 4, 1])


def test_unique_scores_each_distinct_recording_once_and_gathers_the_pairs():
    x, index1, index2 = pair_batch()
    model = CountingMean()
    s1, s2 = unique(model, x, index1, index2)
    assert model.seen == 6
    assert torch.equal(s1, index1.float()) and torch.equal(s2, index2.float())


def test_separate_scores_the_half_batches_and_in_eval_mode_each_distinct_recording_once():
    x, index1, index2 = pair_batch()
    for mode, seen in (("train", 10), ("eval", 6)):
        model = getattr(CountingMean(), mode)()
        s1, s2 = separate(model, x, index1, index2)
        assert model.seen == seen
        assert torch.equal(s1, index1.float()) and torch.equal(s2, index2.float())


@pytest.mark.parametrize("name", ["simple_cnn", "simple_cnn_level", "spectrum_cnn"])
def test_unique_training_step_reads_a_batch_of_views_as_the_stacked_batch(name):
    torch.manual_seed(2)
    model = build_model(name).train()
    reference = copy.deepcopy(model)
    recordings = torch.randn(5, 1, 65, 90) * 15 - 40
    index1, index2 = torch.tensor([0, 1, 2, 2]), torch.tensor([3, 4, 0, 1])
    ours = torch.cat(unique(model, tuple(recordings), index1, index2))
    stacked = torch.cat(unique(reference, recordings, index1, index2))
    torch.testing.assert_close(ours, stacked, rtol=1e-6, atol=1e-6)
    ours.sum().backward()
    stacked.sum().backward()
    assert_grads_close(model, reference, zero=("features.0.bias", "features.4.bias"))  # before BatchNorm


def test_unique_equals_model_x1_model_x2_in_eval_mode():
    torch.manual_seed(0)
    model = build_model("simple_cnn").eval()
    recordings = torch.randn(6, 1, 65, 40)
    index1, index2 = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 3, 0, 4, 1])
    with torch.no_grad():
        a = model(recordings[index1]), model(recordings[index2])
        b = unique(model, recordings, index1, index2)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("views", [False, True])
@pytest.mark.parametrize("name", ["simple_cnn", "simple_cnn_level"])
def test_separate_training_step_equals_the_plain_step_and_convolves_each_recording_once(monkeypatch, name, views):
    """Loss, every gradient and BatchNorm's running statistics as model(x1), model(x2) through the plain
    module sequence give them, with repeated recordings in and across the half-batches; the batch stacked or as
    views of its recordings (a CPU training batch)."""
    torch.manual_seed(1)
    model = build_model(name).train()
    with torch.no_grad():
        model.features[1].weight.uniform_(-1.0, 2.0)  # negative gammas take the min-pool path
    reference = copy.deepcopy(model)
    recordings = torch.randn(7, 1, 65, 90) * 15 - 40
    index1, index2 = torch.tensor([0, 1, 2, 2, 5, 6, 1]), torch.tensor([3, 3, 0, 4, 1, 1, 6])
    x1, x2 = recordings[index1], recordings[index2]
    target = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0])
    seen = []
    batches = resnet_ranker.std_conv_bn_relu_pool_batches
    monkeypatch.setattr(resnet_ranker, "std_conv_bn_relu_pool_batches",
                        lambda x, *rest: seen.append(len(x)) or batches(x, *rest))
    loss = nn.MarginRankingLoss(margin=1.0)
    ours = loss(*separate(model, tuple(recordings) if views else recordings, index1, index2), target)
    plain = loss(reference._plain(x1), reference._plain(x2), target)
    assert seen == [7]
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)
    ours.backward()
    plain.backward()
    assert_grads_close(model, reference, zero=("features.0.bias",))
    for a, b in zip(model.buffers(), reference.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cli_trains_with_unique_pair_forward(tiny_data, tmp_path):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1",
                                      "--pair-forward", "unique")) == 0


@pytest.mark.parametrize("model", ["simple_cnn", "spectrum_cnn"])
def test_validation_from_one_score_per_recording_equals_scoring_every_batch(tiny_data, tmp_path, model):
    """evaluate() scores each validation recording once per pass; the per-batch forward gives the same figures."""
    from audio_data.loading import make_loader
    from training.loop import build_training, evaluate, run_data, run_epoch

    cfg = train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--model", model))
    data = run_data(cfg)
    torch.manual_seed(0)
    t = build_training(cfg, torch.device("cpu"))
    for _ in range(2):  # running statistics and GHM momentum away from their initial values
        run_epoch(t, data.train_loader, torch.device("cpu"), True, 1, False)
    once = evaluate(t, data.val_loader, data.val_pairs, torch.device("cpu"), 1, False)
    with_spectrograms = make_loader(data.val_pairs, data.val_loader.batch_size, False, cfg.run.seed, 0)
    with torch.no_grad():
        every_batch = run_epoch(t, with_spectrograms, torch.device("cpu"), False, 1, False)
    assert once.keys() == every_batch.keys()
    for key in once:
        assert once[key] == pytest.approx(every_batch[key], rel=1e-5, abs=1e-6), key
