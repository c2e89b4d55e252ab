"""The fused first block's element-wise passes as compiled loops (numba), one pass over memory each.

In PyTorch each of these is a chain of five to fifteen whole-tensor operations, every one reading and writing
tensors of several MB, so that on a CPU they cost several times the convolution itself. The arrays are numpy views
of channels-last tensors, `[recordings, rows, columns, channels]` (the patch matrices' excepted). Sums are
accumulated in float64, one partial sum per row (or pair of rows), added up afterwards. `sign[c]` is +1 or −1:
channels whose BatchNorm scale γ is negative pool the minimum (see fused_block).

The two passes over whole half-batches (`normalize`, `channel_sums`) run in two halves of rows when PyTorch may use
two threads or more, the caller's thread taking one and a helper thread the other (the loops release the GIL;
docs/performance.md has the gain). The halves write disjoint parts and per-row partial sums, so the results do
not depend on the number of threads. The per-recording passes stay on one thread: each follows a oneDNN or MKL call
whose OpenMP worker keeps spinning on the other core for a while, so that splitting them gained little and nothing
on a busy machine. numba's own parallel loops were tried first and dropped: their OpenMP/workqueue pools
spun against PyTorch's threads and other processes (the test suite's CPU time doubled), and the workqueue pool
aborted training from several threads of one process. Compiled on first use and cached beside this file (numba's
`cache=True`); `available()` says whether numba is installed: without it the models take their plain modules.
"""

import functools
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

_kernels = None


@functools.cache
def available() -> bool:
    """Whether numba is installed; asked on every training forward, so looked up once."""
    return importlib.util.find_spec("numba") is not None


def _nhwc(t: torch.Tensor) -> np.ndarray:
    """The numpy view `[N, H, W, C]` of a channels-last tensor `[N, C, H, W]`."""
    return t.permute(0, 2, 3, 1).numpy()


def _compile() -> tuple:
    """The kernels, compiled (or loaded from numba's cache) at the first call.

    Indices are unsigned (`u`): numba then skips its negative-index check on every access, which otherwise keeps
    the loops from being vectorised (two to three times slower)."""
    from numba import njit

    u = np.uint64

    @njit(cache=True, nogil=True)
    def pool_moments(first, stop, y, sign, pooled, partial):
        """pooled = the 2×2 max (min where sign < 0) of y; partial[n, p] = Σ y and Σ y² over rows 2p and 2p + 1;
        for the row pairs p in [first, stop). One read of y: the sums are taken window by window, then over the
        odd last column and row that pooling drops."""
        r, h, w, channels = u(y.shape[0]), u(y.shape[1]), u(y.shape[2]), u(y.shape[3])
        ph, pw = u(pooled.shape[1]), u(pooled.shape[2])
        sum1, sum2 = np.empty(y.shape[3]), np.empty(y.shape[3])  # the rows' sums, apart from the arrays read
        for n in range(r):
            for p in range(u(first), u(stop)):
                sum1[:] = 0.0
                sum2[:] = 0.0
                i = u(2) * p
                for j in range(pw if p < ph else u(0)):
                    k = u(2) * j
                    for c in range(channels):
                        a, b = y[n, i, k, c], y[n, i, k + u(1), c]
                        d, e = y[n, i + u(1), k, c], y[n, i + u(1), k + u(1), c]
                        a64, b64, d64, e64 = np.float64(a), np.float64(b), np.float64(d), np.float64(e)
                        sum1[c] += (a64 + b64) + (d64 + e64)
                        sum2[c] += (a64 * a64 + b64 * b64) + (d64 * d64 + e64 * e64)
                        s = sign[c]
                        pooled[n, p, j, c] = s * max(max(s * a, s * b), max(s * d, s * e))
                for row in range(i, min(i + u(2), h)):
                    for j in range(u(2) * pw if p < ph else u(0), w):
                        for c in range(channels):
                            v = np.float64(y[n, row, j, c])
                            sum1[c] += v
                            sum2[c] += v * v
                partial[n, p, 0] = sum1
                partial[n, p, 1] = sum2

    @njit(cache=True, nogil=True)
    def normalize(first, stop, y_at, group, a, b, out):
        """out[k] = max(0, a · y_at[group[k]] + b), rows [first, stop)."""
        for k in range(u(len(group))):
            r = u(group[k])
            for i in range(u(first), u(stop)):
                for j in range(u(out.shape[2])):
                    for c in range(u(out.shape[3])):
                        out[k, i, j, c] = max(np.float32(0.0), a[c] * y_at[r, i, j, c] + b[c])

    @njit(cache=True, nogil=True)
    def channel_sums(first, stop, out, grad_out, y_at, group, mean, a, pooled, partial):
        """g = grad_out where out > 0: partial[k, i] = Σ g and Σ g · (y_at[group[k]] − mean) over row i of batch
        row k; pooled[group[k]] += a · g; rows i in [first, stop)."""
        channels = u(out.shape[3])
        s, d = np.empty(out.shape[3]), np.empty(out.shape[3])  # the row's sums, apart from the arrays read
        for k in range(u(len(group))):
            r = u(group[k])
            for i in range(u(first), u(stop)):
                s[:] = 0.0
                d[:] = 0.0
                for j in range(u(out.shape[2])):
                    for c in range(channels):
                        g = grad_out[k, i, j, c] if out[k, i, j, c] > 0 else np.float32(0.0)
                        s[c] += g
                        d[c] += np.float64(g) * (np.float64(y_at[r, i, j, c]) - mean[c])
                        pooled[r, i, j, c] += a[c] * g
                partial[k, i, 0] = s
                partial[k, i, 1] = d

    @njit(cache=True, nogil=True)
    def route(first, stop, y0, y1, y2, y3, grad, scale, shift, sign):
        """Each phase y_φ (window positions (0, 0), (0, 1), (1, 0), (1, 1)) becomes scale · y_φ + shift, plus grad
        at the window's first maximum of sign · y, as max_pool2d routes it; rows [first, stop). Rows and columns
        beyond grad's (an odd last one of the convolution, which pooling drops) get the affine part only."""
        r, h, w, channels = u(grad.shape[0]), u(grad.shape[1]), u(grad.shape[2]), u(grad.shape[3])
        for n in range(r):
            for i in range(u(first), u(stop)):
                for y in (y0, y1, y2, y3):
                    for j in range(w if i < h else u(0), u(y.shape[2]) if i < u(y.shape[1]) else u(0)):
                        for c in range(channels):
                            y[n, i, j, c] = scale[n, c] * y[n, i, j, c] + shift[n, c]
                if i >= h:
                    continue
                for j in range(w):
                    for c in range(channels):
                        s, a, b, g = sign[c], scale[n, c], shift[n, c], grad[n, i, j, c]
                        v0, v1, v2, v3 = y0[n, i, j, c], y1[n, i, j, c], y2[n, i, j, c], y3[n, i, j, c]
                        m = max(max(s * v0, s * v1), max(s * v2, s * v3))
                        y0[n, i, j, c] = a * v0 + b + (g if s * v0 == m else 0.0)
                        y1[n, i, j, c] = a * v1 + b + (g if s * v1 == m and s * v0 != m else 0.0)
                        y2[n, i, j, c] = a * v2 + b + (g if s * v2 == m and s * v0 != m and s * v1 != m else 0.0)
                        y3[n, i, j, c] = a * v3 + b + (g if s * v0 != m and s * v1 != m and s * v2 != m else 0.0)

    @njit(cache=True, nogil=True)
    def patches(first, stop, xp, i0, j0, kh, kw, dh, dw, sh, sw, out):
        """out[n, (c, ki, kj), a, b] = xp[n, c, i0 + ki·dh + a·sh, j0 + kj·dw + b·sw]: the input value each weight
        meets at each output position (xp is `[N, C, H, W]`, not channels-last); output rows a in [first, stop).
        Output row by output row, so that the kh input rows it reads stay in the cache."""
        kh, kw, w = u(kh), u(kw), u(out.shape[3])
        for n in range(u(xp.shape[0])):
            for a in range(u(first), u(stop)):
                for c in range(u(xp.shape[1])):
                    for ki in range(kh):
                        src = xp[n, c, u(i0) + ki * u(dh) + a * u(sh)]
                        for kj in range(kw):
                            dst = out[n, (c * kh + ki) * kw + kj, a]
                            start = u(j0) + kj * u(dw)
                            for b in range(w):
                                dst[b] = src[start + b * u(sw)]

    return pool_moments, normalize, channel_sums, route, patches


def _run(kernel: int, extent: int, *args: np.ndarray | int, halves: bool = False) -> None:
    """Kernel number `kernel` of `_compile`'s on the arguments, over [0, extent) of the dimension it splits; with
    `halves`, in two halves on two threads (the caller's and a helper's) when PyTorch may use two or more."""
    global _kernels
    if _kernels is None:
        _kernels = _compile()
    run, middle = _kernels[kernel], extent // 2
    if not halves or torch.get_num_threads() < 2 or middle == 0:
        run(0, extent, *args)
        return
    second = _helper(os.getpid()).submit(run, middle, extent, *args)
    try:
        run(0, middle, *args)
    finally:
        second.result()


@functools.cache
def _helper(pid: int) -> ThreadPoolExecutor:
    """The helper thread of this process (`pid`: a forked child gets its own; the parent's thread is not in it)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fused-kernels")


def pool_moments(y: torch.Tensor, sign: torch.Tensor, pooled: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Writes the 2×2 max-pool of y (the min in channels where sign < 0) into `pooled`; returns the count per
    recording and channel, and each recording's channel means and biased variances `[r, C]` in float64."""
    r, c, h, w = y.shape
    partial = np.empty((r, (h + 1) // 2, 2, c))
    _run(0, partial.shape[1], _nhwc(y), sign.numpy(), _nhwc(pooled), partial)
    sums = torch.from_numpy(partial).sum(1) / (h * w)
    return h * w, sums[:, 0], sums[:, 1] - sums[:, 0] ** 2


def normalize(y_at: torch.Tensor, group: np.ndarray, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`relu(a · y_at[group] + b)` per channel, channels-last."""
    out = torch.empty((len(group), *y_at.shape[1:]), dtype=y_at.dtype, memory_format=torch.channels_last)
    _run(1, out.shape[2], _nhwc(y_at), group, a.numpy(), b.numpy(), _nhwc(out), halves=True)
    return out


def channel_sums(out: torch.Tensor, grad_out: torch.Tensor, y_at: torch.Tensor, group: np.ndarray,
                 mean: torch.Tensor, a: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S = Σ g and D = Σ g · (y_at[group] − mean) per channel in float64, g = grad_out where out > 0; adds a · g to
    `pooled`'s row of each batch row's recording."""
    grad_out = grad_out.contiguous(memory_format=torch.channels_last)
    partial = np.empty((len(out), out.shape[2], 2, out.shape[1]))
    _run(2, out.shape[2], _nhwc(out), _nhwc(grad_out), _nhwc(y_at), group, mean.double().numpy(), a.numpy(),
         _nhwc(pooled), partial, halves=True)
    sums = torch.from_numpy(partial).sum((0, 1))
    return sums[0], sums[1]


def route(parts: list[torch.Tensor], grad: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
          sign: torch.Tensor) -> None:
    """Each phase part (channels-last) becomes `scale · y + shift` plus `grad` at each window's first maximum
    (minimum where sign < 0), in place; scale and shift are `[r, C]`."""
    _run(3, max(part.shape[2] for part in parts), *(_nhwc(part) for part in parts), _nhwc(grad), scale.numpy(),
         shift.numpy(), sign.numpy())


def patches(xp: torch.Tensor, origin: tuple[int, int], kernel: tuple[int, int], dilation: tuple[int, int],
            step: tuple[int, int], out: torch.Tensor) -> None:
    """Writes into out `[r, C·kh·kw (+ more), h, w]` the input value each weight of a kernel of size `kernel`
    meets at each output position of a convolution of xp `[r, C, H, W]` whose first output reads xp at `origin`
    and whose outputs lie `step` apart."""
    _run(4, out.shape[2], xp.numpy(), *origin, *kernel, *dilation, *step, out.numpy())
