"""Where a run's time goes: wall-clock seconds per phase, printed by train.py --profile."""

import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PhaseClock:
    """Seconds per named phase since `reset`; phases may nest (a report lists each phase on its own)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.before = process_seconds()  # what the process did before this run: start-up, imports, flags
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)
        self.rss_rise: dict[str, float] = defaultdict(float)  # growth of the peak RSS during a phase, bytes

    def mark(self, name: str) -> None:
        """Phase `name` is everything since `reset`."""
        self.seconds[name] = time.perf_counter() - self.started
        self.rss_rise[name] = _peak_rss()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start, peak = time.perf_counter(), _peak_rss()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.rss_rise[name] += _peak_rss() - peak

    def report(self, order: list[tuple[str, str]]) -> str:
        """One line: each (label, phase) of `order` in seconds and as a share of the time since `reset`, then the
        rest; then the process's peak RSS and how much each phase raised it (start-up: from the process's start).
        A label's phase may be "a - b": phase a less the phase b nested in it."""
        total = time.perf_counter() - self.started
        parts, counted = [], 0.0
        for label, phase in order:
            seconds = self._net(self.seconds, phase)
            counted += seconds
            parts.append(f"{label} {seconds:.1f} s ({seconds / total:.1%})")
        parts.append(f"other {total - counted:.1f} s ({(total - counted) / total:.1%})")
        rises = [(label, self._net(self.rss_rise, phase)) for label, phase in order]
        memory = ", ".join(f"{label} +{rise / 1e9:.2f}" for label, rise in rises if rise >= 0.005e9)
        before = "" if self.before is None else (f"; before it {self.before:.1f} s since the process started "
                                                 "(interpreter, imports, flags, earlier runs)")
        return (f"profile of {total:.1f} s: " + " · ".join(parts) + before
                + f"; peak RSS {_peak_rss() / 1e9:.2f} GB (GB added by {memory or 'none'})")

    @staticmethod
    def _net(figures: dict[str, float], phase: str) -> float:
        outer, _, inner = phase.partition(" - ")
        return figures.get(outer, 0.0) - figures.get(inner, 0.0)


def process_seconds() -> float | None:
    """Seconds since this process started, from /proc (Linux; None elsewhere), to 1/100 s."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss() -> float:
    """The process's peak resident memory so far, bytes (Linux reports kB, macOS bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1.0 if sys.platform == "darwin" else 1024.0)


CLOCK = PhaseClock()
