"""Figures for files: the one place that makes and saves them.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so no backend is chosen and no global
state changes: a notebook that imports this project keeps its own backend, and a machine without a display draws
the same files. matplotlib is imported on first use, so a run that draws nothing does not load it.
"""

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from utils.io_utils import atomic_path


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), layout: str | None = None,
             **grid: Any) -> tuple[Any, Any]:
    """A new figure and its axes, as `pyplot.subplots` would give them (`grid`: Figure.subplots' options)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **grid)


class BackgroundFigures:
    """With `background`, draws figures one after the other in a thread of their own while the caller goes on (a
    GPU run's next steps, which leave the CPU idle); without it, at once. All figures of a run go through it, so
    matplotlib never draws in two threads at once; `wait()` returns once every figure is written, raising the first
    failure. A CPU run draws at once, as before: there a drawing thread would compete with the training's own
    threads for the cores."""

    def __init__(self, background: bool = False):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="figures") if background else None
        self.pending: list[Future] = []

    def submit(self, draw: Callable[..., None], *args: Any) -> None:
        """`draw(*args)`, now or later; its arguments must not change meanwhile (pass copies)."""
        if self.pool is None:
            draw(*args)
        else:
            self.pending.append(self.pool.submit(draw, *args))

    def wait(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown()


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
