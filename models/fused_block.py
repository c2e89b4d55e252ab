"""Standardise → conv → BatchNorm (train mode) → ReLU → 2×2 max-pool, one recording at a time.

Plain autograd keeps the standardised input, the convolution output y, the BatchNorm/ReLU output and
int64 pooling indices from forward to backward: for the first layer of the small CNN on 6 s
recordings, tensors of 0.15-1.2 GB per half-batch, allocated, page-faulted in and freed every step.
This block keeps only the pooled convolution output (besides its own output, which the next layer keeps
anyway), and works through the batch in chunks of about CHUNK_BYTES of convolution output (one recording
at full size), so that no full-size activation exists and each chunk's tensors stay in the cache.

Forward. BatchNorm followed by ReLU is a per-channel monotone map f(y) = relu(a·y + b) with
a = γ·invstd and b = β − a·μ, so max-pooling commutes with it: pool(f(y)) = f(pool(y)) when a > 0,
and uses the minimum of y when a < 0. Each chunk is convolved at full resolution (oneDNN, channels-last);
one compiled pass (models/fused_kernels.py) pools it and sums y and y² per recording and channel in float64,
and BatchNorm then applies to the pooled y only.

Backward. Each chunk's convolution is recomputed as four phases, y[..., i::2, j::2] for the four positions
(i, j) of a pooling window, and the BatchNorm gradient is an affine
map of y plus the pooled gradient routed to each window's first maximum (max_pool2d's choice):

    g       = g_out · [out > 0]                       pooled gradient after the ReLU
    S = Σ g,   D = Σ g · (y_argmax − μ)                per channel, N = batch · height · width
    grad_y  = A · y + B + route(a · g),   A = −a·invstd²·D / N,   B = −a·S / N − A·μ
    grad_γ  = invstd · D,   grad_β = S

grad_y is formed in the recomputed phases' buffers by one compiled pass; the weight gradient is grad_y
times each phase's patch matrix (the input value each weight meets at each output position), a matrix
product that is several times faster per recording than oneDNN's weight gradient on small batches
(docs/performance.md).
The results equal the module sequence to float rounding; tests check it.
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import models.fused_kernels as kernels
from models.common import EPS, std_mean, conv_output_size, rows_per_chunk


def _chunks(recordings: list[torch.Tensor], rows: int) -> list[torch.Tensor]:
    """The recordings `rows` at a time as `[r, C, F, T]` (a single recording is passed as it is, not copied)."""
    return [recordings[i] if rows == 1 else torch.cat(recordings[i:i + rows]) for i in range(0, len(recordings), rows)]


def _padding_buffer(x: torch.Tensor, rows: int, conv: nn.Conv2d) -> torch.Tensor:
    """Zeros for `rows` padded inputs: chunk after chunk only the inside is rewritten; the padding stays zero."""
    (ph, pw), (_, c, h, w) = conv.padding, x.shape
    return x.new_zeros(rows * c * (h + 2 * ph) * (w + 2 * pw))


def _padded(buffer: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, conv: nn.Conv2d
            ) -> torch.Tensor:
    """`(x − mean) / scale` inside the convolution's zero padding, written into `buffer`."""
    (ph, pw), (r, c, h, w) = conv.padding, x.shape
    xp = buffer[:r * c * (h + 2 * ph) * (w + 2 * pw)].view(r, c, h + 2 * ph, w + 2 * pw)
    torch.sub(x, mean, out=xp[:, :, ph:ph + h, pw:pw + w]).div_(scale)
    return xp


PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # positions in a 2×2 pooling window, in max_pool2d's order


def _phase_size(hp: int, wp: int, phase: tuple[int, int], conv: nn.Conv2d) -> tuple[int, int]:
    """Rows and columns of the convolution's phase `[..., i::2, j::2]` for a padded input of hp × wp."""
    (i, j), (kh, kw), (sh, sw), (dh, dw) = phase, conv.kernel_size, conv.stride, conv.dilation
    return (hp - i * sh - dh * (kh - 1) - 1) // (2 * sh) + 1, (wp - j * sw - dw * (kw - 1) - 1) // (2 * sw) + 1


def _patch_buffers(x: torch.Tensor, rows: int, conv: nn.Conv2d) -> list[torch.Tensor]:
    """Per phase `[rows, C·kh·kw + 1, h, w]` for `_patches` of inputs of x's size, the last row (the bias's)
    all ones."""
    (ph, pw), (_, c, h, w) = conv.padding, x.shape
    k = c * conv.kernel_size[0] * conv.kernel_size[1]
    buffers = [x.new_empty(rows, k + 1, *_phase_size(h + 2 * ph, w + 2 * pw, phase, conv)) for phase in PHASES]
    for buffer in buffers:
        buffer[:, k].fill_(1.0)
    return buffers


def _patches(xp: torch.Tensor, phase: tuple[int, int], conv: nn.Conv2d, buffer: torch.Tensor) -> torch.Tensor:
    """`[r, C·kh·kw + 1, h, w]` in `buffer`: the input value each weight meets at each position of the
    convolution's phase `[..., i::2, j::2]`, and the buffer's row of ones (the bias's)."""
    (i, j), (sh, sw) = phase, conv.stride
    out = buffer[:len(xp)]
    kernels.patches(xp, (i * sh, j * sw), conv.kernel_size, conv.dilation, (2 * sh, 2 * sw), out)
    return out


def _phase_outputs(patches: torch.Tensor, weight_wb: torch.Tensor) -> torch.Tensor:
    """The convolution's phase `[r, C_out, h, w]` (channels-last) as its patch matrix times the weights and bias."""
    r, k, h, w = patches.shape
    return torch.matmul(patches.view(r, k, h * w).transpose(1, 2), weight_wb.t()).view(r, h, w, -1).permute(0, 3, 1, 2)


def _add_weight_gradient(grad_wb: torch.Tensor, patches: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    """Add each phase's patch matrix `[r, C·kh·kw + 1, h, w]` times its grad_y `[r, C_out, h, w]` (channels-last)
    to grad_wb `[C·kh·kw + 1, C_out]`."""
    for phase_patches, grad_y in zip(patches, grads):
        for p, gy in zip(phase_patches.flatten(2), grad_y.permute(0, 2, 3, 1).flatten(1, 2)):
            grad_wb.addmm_(p, gy)


def _group_moments(mean: torch.Tensor, var: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance `[C]` of a batch that holds recording r `weights[r]` times, from the recordings'
    own `[R, C]` (all recordings have the same number of values)."""
    w = (weights / weights.sum())[:, None]
    group_mean = (w * mean).sum(0)
    return group_mean, (w * (var + (mean - group_mean) ** 2)).sum(0)


class _StdConvBNReLUPool(torch.autograd.Function):
    """The block for several batches drawn from the same recordings: batch h holds `recordings[r]` for each row
    number r of `groups[h]`, with its own BatchNorm statistics and output; each recording is convolved once
    whatever its number of copies."""

    @staticmethod
    def forward(ctx, weight, bias, gamma, beta, recordings, conv, bn, rows, groups):
        x = recordings[0]
        sign = torch.where(gamma < 0, -1.0, 1.0).to(x.dtype)  # channels whose γ < 0 pool the minimum of y
        weight_cl = torch.empty_like(weight, memory_format=torch.channels_last).copy_(weight)
        means, variances, x_means, x_scales = [], [], [], []
        out_h, out_w = conv_output_size(x, conv)
        y_at = torch.empty((len(recordings), len(weight), out_h // 2, out_w // 2), dtype=x.dtype, device=x.device,
                           memory_format=torch.channels_last)  # the pooled y, each window's y at its maximum
        buffer = _padding_buffer(x, rows, conv)
        for start, xc in zip(range(0, len(recordings), rows), _chunks(recordings, rows)):
            std, x_mean = std_mean(xc)
            x_means.append(x_mean)
            x_scales.append(std + EPS)
            xp = _padded(buffer, xc, x_mean, x_scales[-1], conv)
            y = F.conv2d(xp, weight_cl, bias, conv.stride, 0, conv.dilation)  # channels-last, as weight_cl
            n, mean_c, var_c = kernels.pool_moments(y, sign, y_at[start:start + len(xc)])
            means.append(mean_c)
            variances.append(var_c)
        mean_r, var_r = torch.cat(means), torch.cat(variances)
        groups = [np.asarray(group, dtype=np.int64) for group in groups]
        counts = [torch.bincount(torch.from_numpy(g), minlength=len(recordings)).double() for g in groups]
        outs, group_means, invstds, sizes = [], [], [], []
        for group, count in zip(groups, counts):
            mean64, var64 = _group_moments(mean_r, var_r, count)
            size = n * len(group)
            mean, invstd = mean64.to(x.dtype), (var64 + bn.eps).rsqrt().to(x.dtype)
            bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
            bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * (var64 * size / max(size - 1, 1)).to(x.dtype))
            a = gamma * invstd
            outs.append(kernels.normalize(y_at, group, a, beta - mean * a))
            group_means.append(mean)
            invstds.append(invstd)
            sizes.append(size)
        ctx.conv, ctx.sizes, ctx.rows, ctx.sign, ctx.groups, ctx.counts = conv, sizes, rows, sign, groups, counts
        ctx.recordings = recordings  # inputs without gradient, views into the batch: kept as they are
        ctx.has_bias = bias is not None
        ctx.save_for_backward(torch.cat(x_means), torch.cat(x_scales), weight_cl,
                              weight.new_zeros(len(weight)) if bias is None else bias, gamma,
                              torch.stack(group_means), torch.stack(invstds), y_at, *outs)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grad_outs):
        x_mean, x_scale, weight_cl, bias, gamma, means, invstds, y_at, *outs = ctx.saved_tensors
        rows, recordings, x = ctx.rows, ctx.recordings, ctx.recordings[0]
        with torch.no_grad():
            # per recording: grad_y = scale · y + shift + route(pooled), summed over the batches that hold it
            scale = y_at.new_zeros(len(recordings), len(gamma), dtype=torch.float64)
            shift, pooled = torch.zeros_like(scale), torch.zeros_like(y_at)
            grad_gamma, grad_beta = torch.zeros_like(gamma), torch.zeros_like(gamma)
            for group, count, out, grad_out, mean, invstd, size in zip(
                    ctx.groups, ctx.counts, outs, grad_outs, means, invstds, ctx.sizes):
                a = gamma.double() * invstd.double()
                s, d = kernels.channel_sums(out, grad_out, y_at, group, mean, a.to(x.dtype), pooled)
                big_a = -a * invstd.double() ** 2 * d / size
                scale += count[:, None] * big_a
                shift += count[:, None] * (-a * s / size - big_a * mean.double())
                grad_gamma += (invstd.double() * d).to(gamma.dtype)
                grad_beta += s.to(gamma.dtype)
            scale, shift = scale.to(x.dtype), shift.to(x.dtype)
            k = weight_cl[0].numel()
            weight_wb = torch.cat([weight_cl.reshape(len(weight_cl), k), bias[:, None]], dim=1)
            grad_wb = weight_wb.new_zeros(k + 1, len(weight_wb))
            buffer = _padding_buffer(x, rows, ctx.conv)
            patch_buffers = _patch_buffers(x, rows, ctx.conv)
            for xc, mc, sc, pooled_c, scale_c, shift_c in zip(
                    _chunks(recordings, rows), x_mean.split(rows), x_scale.split(rows), pooled.split(rows),
                    scale.split(rows), shift.split(rows)):
                xp = _padded(buffer, xc, mc, sc, ctx.conv)
                # the phases again, from the patches that the weight gradient needs anyway
                patches = [_patches(xp, phase, ctx.conv, b) for phase, b in zip(PHASES, patch_buffers)]
                parts = [_phase_outputs(p, weight_wb) for p in patches]
                kernels.route(parts, pooled_c, scale_c, shift_c, ctx.sign)
                _add_weight_gradient(grad_wb, patches, parts)
        grad_bias = grad_wb[k].clone() if ctx.has_bias else None
        return grad_wb[:k].t().reshape(weight_cl.shape), grad_bias, grad_gamma, grad_beta, None, None, None, None, None


def _check(recordings: list[torch.Tensor], conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """The recordings `[1, C, F, T]` all have the first one's size."""
    x = recordings[0]
    if any(r.requires_grad for r in recordings) or bn.momentum is None or not bn.track_running_stats or not bn.affine:
        raise ValueError("the fused block needs an input without gradient and an affine BatchNorm with "
                         "running statistics and a fixed momentum")
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("the fused block needs a convolution with one group and numeric zero padding")
    out_h, out_w = conv_output_size(x, conv)
    if out_h < 2 or out_w < 2:
        raise ValueError(f"the convolution's output ({out_h} × {out_w}) is smaller than one 2×2 pooling window")


def std_conv_bn_relu_pool(x: torch.Tensor | Sequence[torch.Tensor], conv: nn.Conv2d, bn: nn.BatchNorm2d
                          ) -> torch.Tensor:
    """`max_pool2d(relu(bn(conv(standardize(x)))), 2)` with `bn` in training mode for a batch x `[B, C, F, T]` (or
    its B recordings `[C, F, T]`); x needs no gradient."""
    return std_conv_bn_relu_pool_batches(x, conv, bn, (list(range(len(x))),))[0]


def std_conv_bn_relu_pool_batches(x: torch.Tensor | Sequence[torch.Tensor], conv: nn.Conv2d, bn: nn.BatchNorm2d,
                                  batches: tuple[list[int], ...]) -> tuple[torch.Tensor, ...]:
    """The block applied to each batch `x[index]` in turn (as separate training-mode calls would, running
    statistics included), with every recording of x (`[B, C, F, T]`, or its B recordings `[C, F, T]`) convolved
    once: a batch of pairs repeats recordings. The recordings are read where they are, a few at a time."""
    recordings = [row.unsqueeze(0) for row in x]
    _check(recordings, conv, bn)
    bn.num_batches_tracked.add_(len(batches))
    rows = rows_per_chunk(recordings[0], conv)
    return _StdConvBNReLUPool.apply(conv.weight, conv.bias, bn.weight, bn.bias, recordings, conv, bn, rows, batches)
