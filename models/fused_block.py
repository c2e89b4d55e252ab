"""Standardise → conv → BatchNorm (train mode) → ReLU → 2×2 max-pool, in a fraction of the memory.

Plain autograd keeps the standardised input, the convolution output y, the BatchNorm/ReLU output and
int64 pooling indices from forward to backward: for the first layer of the small CNN on 6 s
recordings, three tensors of about 0.6 GB per half-batch, allocated, page-faulted in and freed
every step. This block keeps only pooled tensors, and runs the forward convolution in chunks of the
batch so that no full-size activation exists at all in the forward pass.

Forward. BatchNorm followed by ReLU is a per-channel monotone map f(y) = relu(a·y + b) with
a = γ·invstd and b = β − a·μ, so max-pooling commutes with it: pool(f(y)) = f(pool(y)) when a > 0,
and uses the minimum of y when a < 0 (pooled as the maximum of −y). Each chunk is convolved once;
the chunks' per-channel means and variances are combined, and y is pooled before BatchNorm.

Backward. The convolution is recomputed (in chunks of up to 1 GiB: for the benchmark's batch, all
of it, since the weight-gradient kernel is much slower on small batches), and the BatchNorm
gradient is an affine map of y plus the pooled gradient scattered to the arg-max positions:

    g       = g_out · [out > 0]                       pooled gradient after the ReLU
    S = Σ g,   D = Σ g · (y_argmax − μ)                per channel, N = batch · height · width
    grad_y  = A · y + B + scatter(a · g),   A = −a·invstd²·D / N,   B = −a·S / N − A·μ
    grad_γ  = invstd · D,   grad_β = S

computed in the recomputed y's buffer and passed to the convolution's weight gradient.
Pooling runs on channels-last copies (the NCHW max-pool kernel is about ten times slower on 2 cores).
The results equal the module sequence to float rounding; tests check it.
"""

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5
CHUNK_BYTES = 160 * 2**20  # size of one chunk's convolution output in forward
# In backward the whole batch (up to 1 GiB of activation) at once: oneDNN's weight gradient is two to three
# times slower per recording on batches of 8-18 rows than on 32 (measured on 2 cores).
CHUNK_BYTES_BACKWARD = 2**30


def standardize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Zero mean and unit variance per spectrogram, so a score never depends on the rest of the batch."""
    std, mean = torch.std_mean(x, dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


def _conv(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups).contiguous()


def _planes(t: torch.Tensor) -> torch.Tensor:
    """`[B, C, H, W]` → `[B, C, H·W]`, the layout in which pooling indices are flat offsets."""
    return t.view(t.shape[0], t.shape[1], -1)


def _combine(stats: list[tuple[int, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and biased variance over all chunks from each chunk's (count, mean, variance), in float64."""
    n = sum(count for count, _, _ in stats)
    mean = sum(count * m for count, m, _ in stats) / n
    var = sum(count * (v + (m - mean) ** 2) for count, m, v in stats) / n
    return mean, var, n


class _StdConvBNReLUPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, conv, bn, rows, rows_backward):
        std, x_mean = torch.std_mean(x, dim=(1, 2, 3), keepdim=True)
        x_scale = std + EPS
        sign = torch.where(gamma < 0, -1.0, 1.0).to(x.dtype)[:, None, None]
        flip = bool((gamma < 0).any())
        stats, pooled, indices = [], [], []
        for xc, mc, sc in zip(x.split(rows), x_mean.split(rows), x_scale.split(rows)):
            y = _conv((xc - mc) / sc, conv, weight, bias).contiguous(memory_format=torch.channels_last)
            _, m, invstd = torch.ops.aten.native_batch_norm(y, None, None, None, None, True, 0.0, bn.eps)
            stats.append((y.numel() // y.shape[1], m.double(), invstd.double() ** -2 - bn.eps))
            if flip:
                y.mul_(sign)
            p, i = F.max_pool2d(y, 2, return_indices=True)
            pooled.append(p.contiguous())
            indices.append(i.to(torch.int32).contiguous())  # half the memory of int64 offsets
            del y
        y_at = torch.cat(pooled) * sign if flip else torch.cat(pooled)
        mean64, var64, n = _combine(stats)
        mean, invstd = mean64.to(x.dtype), (var64 + bn.eps).rsqrt().to(x.dtype)
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean64.to(x.dtype))
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * (var64 * n / max(n - 1, 1)).to(x.dtype))
        a = (gamma * invstd)[:, None, None]
        out = torch.relu(y_at * a + (beta[:, None, None] - mean[:, None, None] * a))
        ctx.conv, ctx.n, ctx.rows_backward = conv, n, rows_backward
        ctx.save_for_backward(x, x_mean, x_scale, weight, bias, gamma, mean, invstd, y_at, torch.cat(indices), out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, x_mean, x_scale, weight, bias, gamma, mean, invstd, y_at, indices, out = ctx.saved_tensors
        with torch.no_grad():
            g = torch.where(out > 0, grad_out, 0.0)
            s = g.sum(dim=(0, 2, 3), dtype=torch.float64)
            d = (y_at - mean[:, None, None]).mul_(g).sum(dim=(0, 2, 3), dtype=torch.float64)
            a = gamma.double() * invstd.double()
            big_a = -a * invstd.double() ** 2 * d / ctx.n
            big_b = -a * s / ctx.n - big_a * mean.double()
            scale, shift = big_a.to(x.dtype)[:, None], big_b.to(x.dtype)[:, None]
            g.mul_(a.to(x.dtype)[:, None, None])
            grad_weight = torch.zeros_like(weight)
            grad_bias = None if bias is None else torch.zeros_like(bias)
            rows = ctx.rows_backward
            for xc, mc, sc, gc, ic in zip(x.split(rows), x_mean.split(rows), x_scale.split(rows), g.split(rows),
                                          indices.split(rows)):
                xs = (xc - mc) / sc
                y = _conv(xs, ctx.conv, weight, bias)
                _planes(y).mul_(scale).add_(shift).scatter_add_(2, _planes(ic).long(), _planes(gc))
                _, gw, gb = torch.ops.aten.convolution_backward(
                    y, xs, weight, None if bias is None else list(bias.shape), ctx.conv.stride,
                    ctx.conv.padding, ctx.conv.dilation, False, [0, 0], ctx.conv.groups,
                    [False, True, bias is not None])
                grad_weight += gw
                if bias is not None:
                    grad_bias += gb
        grad_gamma = (invstd.double() * d).to(gamma.dtype)
        return None, grad_weight, grad_bias, grad_gamma, s.to(gamma.dtype), None, None, None, None


def _even_rows(batch: int, max_rows: int) -> int:
    """Rows per chunk for chunks of (nearly) equal size of at most max_rows (at least 1)."""
    chunks = -(-batch // max(1, max_rows))
    return -(-batch // chunks)


def std_conv_bn_relu_pool(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """`max_pool2d(relu(bn(conv(standardize(x)))), 2)` with `bn` in training mode; x needs no gradient."""
    if x.requires_grad or bn.momentum is None or not bn.track_running_stats or not bn.affine:
        raise ValueError("the fused block needs an input without gradient and an affine BatchNorm with "
                         "running statistics and a fixed momentum")
    bn.num_batches_tracked.add_(1)
    out_h = (x.shape[2] + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
    out_w = (x.shape[3] + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
    row_bytes = conv.out_channels * out_h * out_w * x.element_size()
    rows, rows_backward = (_even_rows(len(x), limit // row_bytes) for limit in (CHUNK_BYTES, CHUNK_BYTES_BACKWARD))
    return _StdConvBNReLUPool.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, conv, bn, rows, rows_backward)
