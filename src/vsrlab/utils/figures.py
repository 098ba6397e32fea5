"""Matplotlib figures that do not touch pyplot's global state (safe in workers and threads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(size: tuple[float, float]) -> Figure:
    """A matplotlib figure on the Agg canvas, independent of pyplot's global state and backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig
