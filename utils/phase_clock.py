"""Where a run's time goes: wall-clock seconds per phase, printed by train.py --profile."""

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseClock:
    """Seconds per named phase since `reset`; phases may nest (a report lists each phase on its own)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)

    def mark(self, name: str) -> None:
        """Phase `name` is everything since `reset`."""
        self.seconds[name] = time.perf_counter() - self.started

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def report(self, order: list[tuple[str, str]]) -> str:
        """One line: each (label, phase) of `order` in seconds and as a share of the time since `reset`, then the
        rest. A label's phase may be "a - b": phase a less the phase b nested in it."""
        total = time.perf_counter() - self.started
        parts, counted = [], 0.0
        for label, phase in order:
            outer, _, inner = phase.partition(" - ")
            seconds = self.seconds.get(outer, 0.0) - self.seconds.get(inner, 0.0)
            counted += seconds
            parts.append(f"{label} {seconds:.1f} s ({seconds / total:.1%})")
        parts.append(f"other {total - counted:.1f} s ({(total - counted) / total:.1%})")
        return f"profile of {total:.1f} s: " + " · ".join(parts)


CLOCK = PhaseClock()
