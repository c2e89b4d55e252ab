"""Standardise → conv → BatchNorm (train mode) → ReLU → 2×2 max-pool, one recording at a time.

Plain autograd keeps the standardised input, the convolution output y, the BatchNorm/ReLU output and
int64 pooling indices from forward to backward: for the first layer of the small CNN on 6 s
recordings, tensors of 0.15-1.2 GB per half-batch, allocated, page-faulted in and freed every step.
This block keeps only the pooled convolution output (besides its own output, which the next layer keeps
anyway), and works through the batch in chunks of about CHUNK_BYTES of convolution output (one recording
at full size), so that no full-size activation exists and each chunk's tensors stay in the cache.

Forward. BatchNorm followed by ReLU is a per-channel monotone map f(y) = relu(a·y + b) with
a = γ·invstd and b = β − a·μ, so max-pooling commutes with it: pool(f(y)) = f(pool(y)) when a > 0,
and uses the minimum of y when a < 0 (pooled as the maximum of −y). Each chunk is convolved as four
phases, y[..., i::2, j::2] for the four positions (i, j) of a pooling window, each a convolution with
twice the stride and a channels-last output, so that pooling is an element-wise maximum of four whole
tensors. The phases add their per-channel mean and variance to the batch statistics (combined in
float64), and y is pooled before BatchNorm.

Backward. Each chunk's phases and their maximum are recomputed, and the BatchNorm gradient is an affine
map of y plus the pooled gradient routed to each window's first maximum (max_pool2d's choice):

    g       = g_out · [out > 0]                       pooled gradient after the ReLU
    S = Σ g,   D = Σ g · (y_argmax − μ)                per channel, N = batch · height · width
    grad_y  = A · y + B + route(a · g),   A = −a·invstd²·D / N,   B = −a·S / N − A·μ
    grad_γ  = invstd · D,   grad_β = S

grad_y is formed in the recomputed phases' buffers; the weight gradient is grad_y times each phase's
patch matrix (the input value each weight meets at each output position), a matrix product that is five
to eight times faster per recording than oneDNN's weight gradient on small batches (2 cores).
The results equal the module sequence to float rounding; tests check it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from models.common import EPS, std_mean, conv_output_size, rows_per_chunk


def _chunks(recordings: list[torch.Tensor], rows: int) -> list[torch.Tensor]:
    """The recordings `rows` at a time as `[r, C, F, T]` (a single recording is passed as it is, not copied)."""
    return [recordings[i] if rows == 1 else torch.cat(recordings[i:i + rows]) for i in range(0, len(recordings), rows)]


def _padding_buffer(x: torch.Tensor, rows: int, conv: nn.Conv2d) -> torch.Tensor:
    """Zeros for `rows` padded inputs plus `stride[1]` spare elements, so that every phase's input is a dense
    view (see `_conv`). Chunk after chunk only the inside is rewritten; the padding stays zero."""
    (ph, pw), (_, c, h, w) = conv.padding, x.shape
    return x.new_zeros(rows * c * (h + 2 * ph) * (w + 2 * pw) + conv.stride[1])


def _padded(buffer: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, conv: nn.Conv2d
            ) -> torch.Tensor:
    """`(x − mean) / scale` inside the convolution's zero padding, written into `buffer`."""
    (ph, pw), (r, c, h, w) = conv.padding, x.shape
    xp = buffer[:r * c * (h + 2 * ph) * (w + 2 * pw)].view(r, c, h + 2 * ph, w + 2 * pw)
    torch.sub(x, mean, out=xp[:, :, ph:ph + h, pw:pw + w]).div_(scale)
    return xp


PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # positions in a 2×2 pooling window, in max_pool2d's order


def _conv(xp: torch.Tensor, phase: tuple[int, int], conv: nn.Conv2d, weight: torch.Tensor,
          bias: torch.Tensor | None) -> torch.Tensor:
    """`conv(x)[..., i::2, j::2]` for phase (i, j): the padded input xp from i strides down and j across,
    convolved with twice the stride. `weight` is channels-last, so the output is channels-last.

    The input is the dense view that starts j strides across: each of its rows runs on into the next
    row's first elements (oneDNN would copy a column slice first, which costs more than the convolution);
    output columns that reach them are cropped."""
    (i, j), (sh, sw), (dw, kw) = phase, conv.stride, (conv.dilation[1], conv.kernel_size[1])
    r, c, hp, wp = xp.shape
    view = xp.as_strided((r, c, hp - i * sh, wp), xp.stride(), xp.storage_offset() + i * sh * wp + j * sw)
    y = F.conv2d(view, weight, bias, (2 * sh, 2 * sw), 0, conv.dilation)
    return y[..., :(wp - j * sw - dw * (kw - 1) - 1) // (2 * sw) + 1]


def _patches(xp: torch.Tensor, phase: tuple[int, int], conv: nn.Conv2d, ones: bool) -> torch.Tensor:
    """`[r, C·kh·kw (+ 1), h, w]`: the input value each weight meets at each output position of
    `_conv(xp, phase, ...)`, plus a row of ones (the bias's) when `ones`."""
    (i, j), (kh, kw), (sh, sw), (dh, dw) = phase, conv.kernel_size, conv.stride, conv.dilation
    r, c, hp, wp = xp.shape
    h, w = (hp - i * sh - dh * (kh - 1) - 1) // (2 * sh) + 1, (wp - j * sw - dw * (kw - 1) - 1) // (2 * sw) + 1
    k = c * kh * kw
    out = xp.new_empty(r, k + ones, h, w)
    windows = xp.as_strided((r, c, kh, kw, h, w), (c * hp * wp, hp * wp, dh * wp, dw, 2 * sh * wp, 2 * sw),
                            xp.storage_offset() + i * sh * wp + j * sw)  # xp is contiguous (see _padded)
    out[:, :k].view(r, c, kh, kw, h, w).copy_(windows)
    if ones:
        out[:, k].fill_(1.0)
    return out


def _windows(parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """The phases' outputs cropped to the pooling windows (max_pool2d drops an odd last row or column)."""
    h, w = parts[3].shape[2], parts[3].shape[3]
    return [part[:, :, :h, :w] for part in parts]


def _pool(windows: list[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.maximum(torch.maximum(windows[0], windows[1]), torch.maximum(windows[2], windows[3]), out=out)


def _route(parts: list[torch.Tensor], grad: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Turn each part y into `scale · y + shift`, plus `grad` at each window's first maximum, in place
    (`grad` is used up)."""
    windows = _windows(parts)
    pooled = _pool(windows)
    hits = [torch.eq(window, pooled, out=torch.empty_like(pooled)) for window in windows[:3]]  # 1.0 or 0.0
    for part in parts:
        part.mul_(scale).add_(shift)
    for window, hit in zip(windows, hits):
        window.addcmul_(hit, grad)
        grad.addcmul_(hit, grad, value=-1.0)
    windows[3].add_(grad)


def _flip(tensors: list[torch.Tensor], sign: torch.Tensor | None) -> None:
    """Multiply by the per-channel sign `[C, 1, 1]` in place; None means all signs are +1."""
    if sign is not None:
        for t in tensors:
            t.mul_(sign)


def _moments(y: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Count per recording and channel, mean and biased variance `[r, C]` (two passes; the last two in float64)."""
    m = y.mean(dim=(2, 3), keepdim=True)
    return y[0, 0].numel(), m.flatten(1).double(), (y - m).square_().mean(dim=(2, 3)).double()


def _phase_outputs(patches: torch.Tensor, weight_wb: torch.Tensor) -> torch.Tensor:
    """`_conv`'s output `[r, C_out, h, w]` (channels-last) as the patch matrix times the weights (and bias)."""
    r, k, h, w = patches.shape
    return torch.matmul(patches.view(r, k, h * w).transpose(1, 2), weight_wb.t()).view(r, h, w, -1).permute(0, 3, 1, 2)


def _add_weight_gradient(grad_wb: torch.Tensor, patches: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    """Add each phase's grad_y `[r, C_out, h, w]` times its patch matrix `[r, C·kh·kw (+ 1), h, w]` to grad_wb
    `[C_out, C·kh·kw (+ 1)]`."""
    for phase_patches, grad_y in zip(patches, grads):
        for gy, p in zip(grad_y.permute(0, 2, 3, 1).flatten(1, 2), phase_patches.flatten(2)):
            grad_wb.addmm_(gy.t(), p.t())


def _combine(stats: list[tuple[int, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and biased variance `[r, C]` over all parts from each part's (count, mean, variance), in float64."""
    n = sum(count for count, _, _ in stats)
    mean = sum(count * m for count, m, _ in stats) / n
    var = sum(count * (v + (m - mean) ** 2) for count, m, v in stats) / n
    return mean, var, n


def _group_moments(mean: torch.Tensor, var: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance `[C]` of a batch that holds recording r `weights[r]` times, from the recordings'
    own `[R, C]` (all recordings have the same number of values)."""
    w = (weights / weights.sum())[:, None]
    group_mean = (w * mean).sum(0)
    return group_mean, (w * (var + (mean - group_mean) ** 2)).sum(0)


def _gather(y_at: torch.Tensor, group: list[int]) -> torch.Tensor:
    """`y_at[group]`, row by row (several times faster than advanced indexing on channels-last tensors)."""
    out = torch.empty((len(group), *y_at.shape[1:]), dtype=y_at.dtype, device=y_at.device,
                      memory_format=torch.channels_last)
    for row, r in zip(out, group):
        row.copy_(y_at[r])
    return out


def _channel_sums(out: torch.Tensor, grad_out: torch.Tensor, y_at: torch.Tensor, group: list[int],
                  mean: torch.Tensor, a: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S = Σ g and D = Σ g · (y_argmax − μ) per channel in float64, g = grad_out · [out > 0], for the batch
    `y_at[group]`, one recording at a time; adds a · g to each recording's row of `pooled`."""
    s = torch.zeros(out.shape[1], dtype=torch.float64, device=out.device)
    d = torch.zeros_like(s)
    for out_j, grad_j, r in zip(out, grad_out, group):
        g = torch.ops.aten.threshold_backward(grad_j, out_j, 0.0)  # grad where out > 0: relu's backward
        s += g.sum(dim=(1, 2)).double()
        d += (y_at[r] - mean).mul_(g).sum(dim=(1, 2)).double()
        pooled[r].add_(g.mul_(a))
    return s, d


class _StdConvBNReLUPool(torch.autograd.Function):
    """The block for several batches drawn from the same recordings: batch h holds `recordings[r]` for each row
    number r of `groups[h]`, with its own BatchNorm statistics and output; each recording is convolved once
    whatever its number of copies."""

    @staticmethod
    def forward(ctx, weight, bias, gamma, beta, recordings, conv, bn, rows, groups):
        # channels whose γ < 0 pool the minimum of y, as the maximum of −y
        x = recordings[0]
        sign = torch.where(gamma < 0, -1.0, 1.0).to(x.dtype)[:, None, None] if bool((gamma < 0).any()) else None
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
            parts = [_conv(xp, phase, conv, weight_cl, bias) for phase in PHASES]
            mean_c, var_c, n = _combine([_moments(y) for y in parts])
            means.append(mean_c)
            variances.append(var_c)
            _flip(parts, sign)
            _pool(_windows(parts), out=y_at[start:start + len(xc)])
        _flip([y_at], sign)  # the pooled minima back to y's values
        mean_r, var_r = torch.cat(means), torch.cat(variances)
        counts = [torch.bincount(torch.tensor(g, dtype=torch.long), minlength=len(recordings)).double() for g in groups]
        outs, group_means, invstds, sizes = [], [], [], []
        for group, count in zip(groups, counts):
            mean64, var64 = _group_moments(mean_r, var_r, count)
            size = n * len(group)
            mean, invstd = mean64.to(x.dtype), (var64 + bn.eps).rsqrt().to(x.dtype)
            bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean)
            bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * (var64 * size / max(size - 1, 1)).to(x.dtype))
            a = gamma * invstd
            out = _gather(y_at, group).mul_(a[:, None, None]).add_((beta - mean * a)[:, None, None])
            outs.append(out.clamp_min_(0.0))
            group_means.append(mean)
            invstds.append(invstd)
            sizes.append(size)
        ctx.conv, ctx.sizes, ctx.rows, ctx.sign, ctx.groups, ctx.counts = conv, sizes, rows, sign, groups, counts
        ctx.recordings = recordings  # inputs without gradient, views into the batch: kept as they are
        ctx.save_for_backward(torch.cat(x_means), torch.cat(x_scales), weight_cl, bias, gamma,
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
                s, d = _channel_sums(out, grad_out, y_at, group, mean[:, None, None], a.to(x.dtype)[:, None, None],
                                     pooled)
                big_a = -a * invstd.double() ** 2 * d / size
                scale += count[:, None] * big_a
                shift += count[:, None] * (-a * s / size - big_a * mean.double())
                grad_gamma += (invstd.double() * d).to(gamma.dtype)
                grad_beta += s.to(gamma.dtype)
            # applied to the sign-flipped y that forward pooled, hence scale · sign
            scale, shift = scale.to(x.dtype)[:, :, None, None], shift.to(x.dtype)[:, :, None, None]
            if ctx.sign is not None:
                scale = scale * ctx.sign
            k = weight_cl[0].numel()
            weight_wb = weight_cl.reshape(len(weight_cl), k) if bias is None else \
                torch.cat([weight_cl.reshape(len(weight_cl), k), bias[:, None]], dim=1)
            grad_wb = torch.zeros_like(weight_wb)
            buffer = _padding_buffer(x, rows, ctx.conv)
            for xc, mc, sc, pooled_c, scale_c, shift_c in zip(
                    _chunks(recordings, rows), x_mean.split(rows), x_scale.split(rows), pooled.split(rows),
                    scale.split(rows), shift.split(rows)):
                xp = _padded(buffer, xc, mc, sc, ctx.conv)
                # the phases again, from the patches that the weight gradient needs anyway
                patches = [_patches(xp, phase, ctx.conv, bias is not None) for phase in PHASES]
                parts = [_phase_outputs(p, weight_wb) for p in patches]
                _flip(parts, ctx.sign)
                _route(parts, pooled_c, scale_c, shift_c)
                _add_weight_gradient(grad_wb, patches, parts)
        grad_bias = None if bias is None else grad_wb[:, k].clone()
        return grad_wb[:, :k].reshape(weight_cl.shape), grad_bias, grad_gamma, grad_beta, None, None, None, None, None


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


def std_conv_bn_relu_pool(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """`max_pool2d(relu(bn(conv(standardize(x)))), 2)` with `bn` in training mode; x needs no gradient."""
    return std_conv_bn_relu_pool_batches(list(x.split(1)), conv, bn, (list(range(len(x))),))[0]


def std_conv_bn_relu_pool_batches(recordings: list[torch.Tensor], conv: nn.Conv2d, bn: nn.BatchNorm2d,
                                  batches: tuple[list[int], ...]) -> tuple[torch.Tensor, ...]:
    """The block applied to each batch `cat(recordings)[index]` in turn (as separate training-mode calls would,
    running statistics included), with every recording `[1, C, F, T]` convolved once: a batch of pairs repeats
    recordings. The recordings are read where they are (views into the batch), a few at a time."""
    _check(recordings, conv, bn)
    bn.num_batches_tracked.add_(len(batches))
    rows = rows_per_chunk(recordings[0], conv)
    return _StdConvBNReLUPool.apply(conv.weight, conv.bias, bn.weight, bn.bias, recordings, conv, bn, rows, batches)
