"""The memory-efficient first block computes what the plain module sequence computes."""

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn

import models.common as common
import models.fused_block as fused_block
from models import build_model
from models.common import standardize
from models.fused_block import std_conv_bn_relu_pool


def assert_grads_close(a: nn.Module, b: nn.Module, zero: tuple[str, ...], rtol: float = 1e-5) -> None:
    """Each gradient within rtol of the reference, relative to its norm or, for gradients under 10% of the
    largest, to 10% of it. The `zero` ones (biases of convolutions that train-mode BatchNorm follows) are zero
    in exact arithmetic: both sides must be rounding noise, under rtol of the largest gradient."""
    scale = max(p.grad.norm() for p in b.parameters())
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        if name in zero:
            assert max(pa.grad.norm(), pb.grad.norm()) <= rtol * scale, name
            continue
        diff = (pa.grad - pb.grad).norm()
        assert diff <= rtol * max(pb.grad.norm(), 0.1 * scale), f"{name}: {diff} vs {pb.grad.norm()}"


@pytest.mark.parametrize("chunk_bytes", [common.CHUNK_BYTES, 40_000, 4_000])
def test_block_equals_the_module_sequence(monkeypatch, chunk_bytes):
    monkeypatch.setattr(common, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(1, 8, 5, stride=(2, 4), padding=2), nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.weight.uniform_(-1.0, 2.0)  # negative gammas take the min-pool path
        bn.bias.uniform_(-0.5, 0.5)
    reference = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn), nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(6, 1, 67, 90) * 12 - 50
    out = std_conv_bn_relu_pool(x, conv, bn)
    expected = reference(standardize(x))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    assert_grads_close(nn.ModuleList([conv, bn]), nn.ModuleList([reference[0], reference[1]]), zero=("0.bias",))
    torch.testing.assert_close(bn.running_mean, reference[1].running_mean)
    torch.testing.assert_close(bn.running_var, reference[1].running_var)
    assert bn.num_batches_tracked == reference[1].num_batches_tracked == 1


CONVS = {"strided": dict(stride=(2, 3), padding=2), "no bias": dict(stride=(1, 2), padding=1, bias=False),
         "dilated": dict(stride=1, padding=2, dilation=2)}


@pytest.mark.parametrize("kind", list(CONVS))
def test_block_gradients_pass_a_float64_gradcheck(kind):
    """Finite differences against the hand-written backward, for every input the block has a gradient for, with
    two batches that repeat recordings within and across them (as the halves of a batch of pairs do)."""
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(1, 3, 3, **CONVS[kind]).double(), nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.7, 0.9]))  # one negative gamma: the min-pool path
        bn.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 1, 13, 17, dtype=torch.float64)
    params = [p.detach().clone().requires_grad_() for p in (conv.weight, conv.bias, bn.weight, bn.bias)
              if p is not None]

    def block(weight, *rest):
        bias = rest[0] if conv.bias is not None else None
        return fused_block._StdConvBNReLUPool.apply(weight, bias, rest[-2], rest[-1], list(x.split(1)), conv, bn, 1,
                                                    ([0, 1, 1], [2, 0, 2]))
    assert torch.autograd.gradcheck(block, tuple(params), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["no bias", "dilated"])
def test_block_without_bias_or_with_dilation_equals_the_module_sequence(kind):
    torch.manual_seed(2)
    conv, bn = nn.Conv2d(1, 4, 3, **CONVS[kind]), nn.BatchNorm2d(4)
    reference = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn), nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(4, 1, 21, 30) * 10 - 40
    out, expected = std_conv_bn_relu_pool(x, conv, bn), reference(standardize(x))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    zero = ("0.bias",) if conv.bias is not None else ()
    assert_grads_close(nn.ModuleList([conv, bn]), nn.ModuleList([reference[0], reference[1]]), zero=zero)


def plain_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.head(model.features(standardize(x))).squeeze(1)


def test_training_step_equals_the_plain_implementation():
    torch.manual_seed(1)
    ours = build_model("simple_cnn")
    plain = copy.deepcopy(ours)
    x1, x2 = torch.randn(8, 1, 129, 300) * 20 - 60, torch.randn(8, 1, 129, 300) * 20 - 70
    target = torch.tensor([1.0, -1.0] * 4)
    loss_fn = nn.MarginRankingLoss(margin=1.0)
    loss_ours = loss_fn(ours(x1), ours(x2), target)
    loss_plain = loss_fn(plain_forward(plain, x1), plain_forward(plain, x2), target)
    assert loss_ours.item() == pytest.approx(loss_plain.item(), rel=1e-5)
    loss_ours.backward()
    loss_plain.backward()
    assert_grads_close(ours, plain, zero=("features.0.bias", "features.4.bias"))


@pytest.mark.parametrize("conv, bn, x, message", [
    (nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=None), torch.randn(2, 1, 9, 9), "fixed momentum"),
    (nn.Conv2d(2, 4, 3, groups=2), nn.BatchNorm2d(4), torch.randn(2, 2, 9, 9), "one group"),
    (nn.Conv2d(1, 4, 3, padding="same"), nn.BatchNorm2d(4), torch.randn(2, 1, 9, 9), "numeric zero padding"),
    (nn.Conv2d(1, 4, 3, stride=4), nn.BatchNorm2d(4), torch.randn(2, 1, 5, 9), "smaller than one 2×2"),
])
def test_block_rejects_what_it_does_not_implement(conv, bn, x, message):
    with pytest.raises(ValueError, match=message):
        std_conv_bn_relu_pool(x, conv, bn)


def test_gradient_goes_to_the_first_maximum_of_each_window_like_max_pool2d():
    torch.manual_seed(2)
    y = torch.randint(0, 3, (2, 3, 9, 11)).float().requires_grad_()  # ties in most windows; odd edges dropped
    grad = torch.randn(2, 3, 4, 5)
    torch.nn.functional.max_pool2d(y, 2).backward(grad)
    parts = [y.detach()[:, :, i::2, j::2].contiguous(memory_format=torch.channels_last)  # as the block has them
             for i, j in fused_block.PHASES]
    fused_block.kernels.route(parts, grad.contiguous(memory_format=torch.channels_last), torch.full((2, 3), 2.0),
                              torch.full((2, 3), 0.5), torch.ones(3))
    routed = torch.empty_like(y)
    for (i, j), part in zip(fused_block.PHASES, parts):
        routed[:, :, i::2, j::2] = part
    torch.testing.assert_close(routed, 2.0 * y.detach() + 0.5 + y.grad, rtol=0, atol=0)


def test_without_numba_the_small_cnn_trains_through_its_plain_modules(monkeypatch):
    model = build_model("simple_cnn").train()
    x = torch.randn(4, 1, 65, 120)
    assert model._fuses(x)
    monkeypatch.setattr(fused_block.kernels, "available", lambda: False)
    assert not model._fuses(x)
    torch.testing.assert_close(model(x), plain_forward(copy.deepcopy(model), x))


@pytest.fixture
def two_threads():
    """PyTorch allowed two threads (the suite's workers have one): the compiled passes then split their work."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def kernel_results() -> list[torch.Tensor]:
    """Every compiled pass on one set of inputs with odd sizes (an odd last row pair, odd phase sizes)."""
    torch.manual_seed(4)
    kernels, cl = fused_block.kernels, torch.channels_last
    y = torch.randn(2, 6, 23, 17).contiguous(memory_format=cl)
    sign = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
    y_at = torch.empty(2, 6, 11, 8).contiguous(memory_format=cl)
    _, mean, var = kernels.pool_moments(y, sign, y_at)
    group, a, b = np.array([1, 0, 1]), torch.rand(6) - 0.3, torch.randn(6)
    out = kernels.normalize(y_at, group, a, b)
    pooled = torch.zeros_like(y_at)
    sums = kernels.channel_sums(out, torch.randn_like(out), y_at, group, mean[0], a, pooled)
    parts = [y[:1, :, i::2, j::2].contiguous(memory_format=cl) for i, j in fused_block.PHASES]
    kernels.route(parts, pooled[:1], torch.rand(1, 6), torch.randn(1, 6), sign)
    xp, patches = torch.randn(2, 3, 21, 19), torch.empty(2, 3 * 5 * 5, 7, 4)
    kernels.patches(xp, (1, 2), (5, 5), (1, 1), (2, 4), patches)
    return [mean, var, y_at, out, pooled, *sums, *parts, patches]


def test_kernels_give_the_same_bits_on_one_thread_and_on_two(two_threads):
    """Two threads write disjoint halves and per-row partial sums: the results do not depend on the threads."""
    on_two = kernel_results()
    torch.set_num_threads(1)
    for a, b in zip(kernel_results(), on_two):
        assert torch.equal(a, b)


def test_kernels_run_from_several_threads_at_once(two_threads):
    """Training runs in threads of one process (tests/test_run_outputs.py) call the compiled passes at the same
    time, sharing the passes' helper thread; each call's results are its own."""
    torch.manual_seed(3)
    ys = [torch.randn(2, 8, 41, 30).contiguous(memory_format=torch.channels_last) for _ in range(4)]
    expected = [torch.nn.functional.max_pool2d(y, 2) for y in ys]
    pooled = [torch.empty_like(e, memory_format=torch.channels_last) for e in expected]

    def work(i):
        for _ in range(20):
            fused_block.kernels.pool_moments(ys[i], torch.ones(8), pooled[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    for p, e in zip(pooled, expected):
        torch.testing.assert_close(p, e, rtol=0, atol=0)
