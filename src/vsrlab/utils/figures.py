"""Matplotlib figures that do not touch pyplot's global state (safe in workers and threads), and the
captioned panel figures of every picture vsrlab draws from images (:func:`panel_figure`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(size: tuple[float, float]) -> Figure:
    """A matplotlib figure on the Agg canvas, independent of pyplot's global state and backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as _Figure

    fig = _Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


@dataclass(frozen=True)
class Panel:
    """One captioned panel of :func:`panel_figure`.

    ``kind``: ``rgb`` — ``image`` ``(H, W, 3)`` uint8; ``flow`` — ``image`` ``(H, W, 2)`` displacements
    ``(x, y)`` in pixels, drawn by :func:`~vsrlab.utils.images.flow_to_rgb` up to ``vmax`` (the
    figure gets a colour wheel); ``heatmap`` — ``image`` ``(H, W)`` values on ``[0, vmax]`` with a
    colour bar labelled ``label``. ``vmax`` None: the panel's largest value.
    """

    image: np.ndarray
    caption: str
    kind: Literal["rgb", "flow", "heatmap"] = "rgb"
    vmax: float | None = None
    label: str = ""


def _top(panel: Panel) -> float:
    if panel.vmax is not None:
        return float(panel.vmax)
    values = np.hypot(panel.image[..., 0], panel.image[..., 1]) if panel.kind == "flow" else panel.image
    return float(np.max(values)) if np.size(values) else 0.0


def _colour_wheel(ax: Any, top: float) -> None:
    """The flow colour code: hue = direction, saturation = length (white: no motion), full at ``top``."""
    from vsrlab.utils.images import flow_to_rgb

    r = np.linspace(-1, 1, 101)
    x, y = np.meshgrid(r, r)
    wheel = flow_to_rgb(np.stack([x, y], -1), 1.0).astype(float) / 255
    alpha = (np.hypot(x, y) <= 1).astype(float)
    ax.imshow(np.concatenate([wheel, alpha[..., None]], -1), extent=(-top, top, top, -top))
    ax.set_title(f"colour wheel\n(full colour: {top:.3g} px)", fontsize=8)
    ax.set_xlabel("x (px)", fontsize=7)
    ax.set_ylabel("y (px)", fontsize=7)
    ax.tick_params(labelsize=6)


def panel_figure(rows: Sequence[Sequence[Panel]], title: str, path: str | Path | None = None,
                 row_labels: Sequence[str] | None = None, tile: float = 1.6) -> np.ndarray:  # fmt: skip
    """Rows of captioned panels under ``title``: heatmaps with colour bars, flow panels with one colour
    wheel for the figure; saved as PNG at ``path`` (with the title, the captions and the colour-scale
    labels in its ``Title``, ``Description`` and ``Comment`` text fields) when given. Returns the
    drawn ``(H, W, 3)`` uint8 image (what W&B logs)."""
    flows = [p for row in rows for p in row if p.kind == "flow"]
    columns = max(len(r) for r in rows) + (1 if flows else 0)
    fig = new_figure((tile * columns + 0.6 * any(p.kind == "heatmap" for r in rows for p in r),
                      tile * len(rows) + 0.7))  # fmt: skip
    grid = fig.add_gridspec(len(rows), columns)
    scales: list[str] = []
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            ax = fig.add_subplot(grid[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(panel.caption, fontsize=8)
            if row_labels is not None and j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
            if panel.kind == "rgb":
                ax.imshow(panel.image, interpolation="nearest")
            elif panel.kind == "flow":
                from vsrlab.utils.images import flow_to_rgb

                ax.imshow(flow_to_rgb(panel.image, _top(panel) or None), interpolation="nearest")
            else:
                image = ax.imshow(panel.image, cmap="viridis", vmin=0, vmax=_top(panel) or 1.0,
                                  interpolation="nearest")  # fmt: skip
                bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
                bar.set_label(panel.label, fontsize=7)
                bar.ax.tick_params(labelsize=6)
                scales.append(f"colour bar: {panel.label}")
    if flows:
        top = max(_top(p) for p in flows) or 1.0  # all at rest (white): any scale reads right
        _colour_wheel(fig.add_subplot(grid[0, columns - 1]), top)
        scales.append(f"colour wheel: hue = direction, saturation = length, full at {top:.3g} px")
    fig.suptitle(title, fontsize=9)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        captions = " | ".join(p.caption for row in rows for p in row)
        if row_labels is not None:
            captions = f"rows: {', '.join(row_labels)}; panels: {captions}"
        fig.savefig(path, dpi=fig.dpi, metadata={"Title": title, "Description": captions,
                                                 "Comment": "; ".join(scales)})  # fmt: skip
    return rgb


def png_text(path: str | Path) -> dict[str, str]:
    """The text fields of a PNG (``Title``, ``Description``, ``Comment`` of :func:`panel_figure`)."""
    from PIL import Image

    with Image.open(path) as image:
        return dict(getattr(image, "text", {}))
