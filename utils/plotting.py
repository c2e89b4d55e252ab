"""Figures for files: the one place that makes and saves them.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so no backend is chosen and no global
state changes: a notebook that imports this project keeps its own backend, and a machine without a display draws
the same files. matplotlib is imported on first use, so a run that draws nothing does not load it.
"""

from pathlib import Path
from typing import Any

from utils.io_utils import atomic_path


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), layout: str | None = None,
             **grid: Any) -> tuple[Any, Any]:
    """A new figure and its axes, as `pyplot.subplots` would give them (`grid`: Figure.subplots' options)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **grid)


def save_figure(fig: Any, path: str | Path) -> None:
    """Save a figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
