"""Keep freed memory in the process for reuse instead of returning it to the kernel."""

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def retain_freed_memory() -> bool:
    """Ask glibc to serve large blocks from its heap and never trim it; returns whether it applied.

    A training step allocates and frees the same GB-sized activations every time. By default glibc
    maps each of them fresh and unmaps it on free, so every step page-faults them in again and
    kernel time exceeds compute time. Retained, the blocks are reused; the process keeps its peak.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 2**31 - 1) and libc.mallopt(M_TRIM_THRESHOLD, -1))
    except (OSError, AttributeError):
        return False
