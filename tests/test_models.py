import os

import pytest
import torch

import models.common as common
from models import build_model


@pytest.mark.parametrize("name, shape", [("simple_cnn", (1, 65, 40)), ("resnet18", (1, 65, 40)),
                                         ("simple_cnn_level", (1, 65, 40)), ("spectrum_cnn", (1, 65, 40))])
def test_one_score_per_spectrogram(name, shape):
    model = build_model(name)
    out = model(torch.randn(5, *shape))
    assert out.shape == (5,)
    out.sum().backward()


@pytest.mark.parametrize("name", ["simple_cnn", "resnet18", "simple_cnn_level", "spectrum_cnn"])
def test_score_does_not_depend_on_the_rest_of_the_batch_in_eval_mode(name):
    torch.manual_seed(0)
    model = build_model(name)
    model.train()
    for _ in range(3):  # move BatchNorm running statistics away from their initial values
        model(torch.randn(4, 1, 65, 40) * 20 - 60)
    model.eval()
    x = torch.randn(1, 1, 65, 40) * 20 - 60
    others = torch.randn(7, 1, 65, 40) * 50 + 30
    with torch.no_grad():
        alone = model(x)
        together = model(torch.cat([others[:3], x, others[3:]]))
    torch.testing.assert_close(together[3:4], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["simple_cnn", "resnet18", "simple_cnn_level"])
def test_eval_on_cpu_scores_one_recording_at_a_time_as_the_whole_batch(monkeypatch, name):
    monkeypatch.setattr(common, "CHUNK_BYTES", 1)  # one recording per chunk
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(5, 1, 65, 40) * 10 - 40
    with torch.no_grad():
        torch.testing.assert_close(model(x), model._plain(x), rtol=1e-5, atol=1e-5)


def test_standardisation_is_per_spectrogram():
    model = build_model("simple_cnn").eval()
    x = torch.randn(2, 1, 65, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x * 3.0 - 80.0), rtol=1e-4, atol=1e-4)


def test_the_level_models_see_the_level_the_original_does_not():
    """A louder recording (+12 dB everywhere) scores the same in the original CNN, and differently in
    simple_cnn_level (whose convolutions see the same standardised spectrogram) and spectrum_cnn."""
    torch.manual_seed(0)
    original, level = build_model("simple_cnn").eval(), build_model("simple_cnn_level").eval()
    x = torch.randn(3, 1, 65, 40) * 10 - 60
    with torch.no_grad():
        torch.testing.assert_close(original(x), original(x + 12.0), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(level(x), level(x + 12.0), atol=1e-3)
        spectrum = build_model("spectrum_cnn").eval()
        assert not torch.allclose(spectrum(x), spectrum(x + 12.0), atol=1e-3)
        pooled = level.features(common.standardize(x))
        torch.testing.assert_close(level.features(common.standardize(x + 12.0)), pooled, rtol=1e-4, atol=1e-4)


def test_the_level_model_trains_through_the_fused_block_as_through_the_plain_modules():
    torch.manual_seed(1)
    model = build_model("simple_cnn_level").train()
    x = torch.randn(6, 1, 65, 40) * 20 - 60
    fused = model(x)
    fused.sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    plain = model._plain(x)
    plain.sum().backward()
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    for name, p in model.named_parameters():
        if name not in ("features.0.bias",):  # a bias before BatchNorm gets no gradient, up to rounding
            torch.testing.assert_close(p.grad, grads[name], rtol=1e-4, atol=1e-5)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")


def test_global_pools_give_the_adaptive_pools_values_and_gradients():
    x = torch.randn(3, 4, 7, 5, requires_grad=True)
    for ours, theirs, shaped in ((common.GlobalPool((2, 3)), torch.nn.AdaptiveAvgPool2d(1), x),
                                 (common.GlobalPool((2,), "max"), torch.nn.AdaptiveMaxPool1d(1), x.flatten(2))):
        a, b = ours(shaped), theirs(shaped)
        torch.testing.assert_close(a, b)
        weights = torch.randn_like(a)
        torch.testing.assert_close(torch.autograd.grad((a * weights).sum(), x)[0],
                                   torch.autograd.grad((b * weights).sum(), x)[0])


def test_deterministic_chooses_the_cuda_algorithms(monkeypatch):
    """Setting the switches needs no GPU; the bit-identical runs themselves are in tests/test_gpu.py."""
    from utils.common_utils import choose_algorithms

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    try:
        choose_algorithms(torch.device("cpu"), True)
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        choose_algorithms(torch.device("cuda"), False)
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
        choose_algorithms(torch.device("cuda"), True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)
