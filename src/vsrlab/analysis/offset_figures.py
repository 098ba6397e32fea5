"""Figures of learned offsets versus optical flow (Chan et al., AAAI 2021, Figs. 4-6).

Drawn by :func:`vsrlab.analysis.offsets.run_offsets` from the maps of
:func:`~vsrlab.analysis.offsets.analyse_frame`, for one module and one neighbour frame:

- ``*_flows.png`` (Fig. 4): flow colours (hue = direction, brightness = length, one scale for the whole
  grid); one row per offset group, the reference flow first, then the group's N learned offsets;
- ``*_residual.png``: the same for offset minus flow prior (flow-guided alignment, BasicVSR++);
- ``*_error_hist.png`` (Fig. 5): distribution of ``|offset - flow|`` over valid pixels, and for N > 1
  the mean L1 distance of the offsets ranked from closest to farthest (Fig. 6);
- ``*_diversity.png`` (Fig. 9): pixelwise offset diversity per group;
- ``*_warps.png`` (Fig. 4): centre frame | neighbour | neighbour warped by the reference flow | warped by
  individual offsets, with PSNRs against the centre frame in the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from vsrlab.utils.images import enlarge, flow_to_rgb, heatmap_rgb, save_rgb, side_by_side, to_uint8_hwc

TILE = 96  # smallest side of a drawn tile, pixels


def _hwc(flow: Tensor) -> np.ndarray:
    """``(2, h, w)`` tensor -> ``(h, w, 2)`` array."""
    return flow.detach().float().cpu().permute(1, 2, 0).numpy()


def tile_grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Rows of ``(h, w, 3)`` uint8 tiles (same size) into one image with white gaps; short rows are
    padded with white tiles."""
    width = max(len(r) for r in rows)
    blank = np.full_like(rows[0][0], 255)
    lines = [side_by_side(*(r + [blank] * (width - len(r))), gap=gap) for r in rows]
    spacer = np.full((gap, lines[0].shape[1], 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, line in enumerate(lines):
        parts += [spacer, line] if i else [line]
    return np.concatenate(parts, axis=0)


def flow_grid(flows: Tensor, ref: Tensor | None = None) -> np.ndarray:
    """Flow-colour grid: row ``g`` = ``[ref,] flows[g, 0], ..., flows[g, N-1]``.

    Args:
        flows: ``(G, N, 2, h, w)`` ``(x, y)``; ref: ``(2, h, w)`` or None.
    """
    mags = flows.detach().float().norm(dim=2).flatten().cpu().numpy()
    if ref is not None:
        mags = np.concatenate([mags, ref.detach().float().norm(dim=0).flatten().cpu().numpy()])
    top = float(np.quantile(mags, 0.99)) or None  # one scale for the grid, robust to outliers
    rows = []
    for g in range(flows.shape[0]):
        row = [] if ref is None else [enlarge(flow_to_rgb(_hwc(ref), top), TILE)]
        row += [enlarge(flow_to_rgb(_hwc(flows[g, n]), top), TILE) for n in range(flows.shape[1])]
        rows.append(row)
    return tile_grid(rows)


def diversity_image(diversity: Tensor) -> np.ndarray:
    """``(G, h, w)`` pixelwise diversity -> heatmaps side by side, one scale (its maximum)."""
    values = diversity.detach().float().cpu().numpy()
    top = float(values.max()) or None
    return side_by_side(*(enlarge(heatmap_rgb(v, top), TILE) for v in values))


def warp_image(maps: dict[str, Any], max_drawn: int) -> np.ndarray:
    """Centre | neighbour | reference-flow warp (if any) | the first ``max_drawn`` offset warps."""
    images = [maps["centre"], maps["neighbour"]]
    if maps.get("ref_warp") is not None:
        images.append(maps["ref_warp"])
    images += [w for _, _, w in maps["warps"][:max_drawn]]
    return side_by_side(*(enlarge(to_uint8_hwc(x), TILE) for x in images))


def error_figure(path: Path, numbers: dict[str, Any], title: str) -> Path:
    """Histogram of ``|offset - flow|`` (Fig. 5) and, for N > 1, mean L1 distance per rank (Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = numbers["flow_comparison"]
    hist, ranks = comp["histogram"], (comp["ranking"] or {}).get("mean_l1_px_per_rank")
    fig, axes = plt.subplots(1, 2 if ranks else 1, figsize=(9 if ranks else 5, 3.2), squeeze=False)
    edges = np.asarray(hist["edges"])
    ax = axes[0, 0]
    ax.bar(edges[:-1], hist["fraction"], width=np.diff(edges), align="edge", color="tab:blue")
    ax.axvline(1.0, color="k", ls="--", lw=0.8)
    under = comp["fraction_under_1px"]
    ax.set(
        xlabel="|offset - flow| (px)",
        ylabel="fraction of valid pixels",
        title=f"{title}\nunder 1 px: {under:.1%}" if under is not None else title,
    )
    if ranks:
        axes[0, 1].plot(range(len(ranks)), ranks, "o-")
        axes[0, 1].set(
            xlabel="rank (closest first)",
            ylabel="mean L1 distance to flow (px)",
            title="offsets ranked per group",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_frame(
    stem: Path, module: str, frame: int, numbers: dict[str, Any], maps: dict[str, Any], max_drawn: int = 9
) -> list[Path]:
    """Write the figures of one module aligning clip frame ``frame``: ``{stem}_flows.png``,
    ``_residual.png`` (flow prior given), ``_error_hist.png`` (reference flow given),
    ``_diversity.png``, ``_warps.png``. Returns their paths."""
    paths = [save_rgb(f"{stem}_flows.png", flow_grid(maps["flows"], maps.get("ref")))]
    if maps.get("residual") is not None:
        paths.append(save_rgb(f"{stem}_residual.png", flow_grid(maps["residual"])))
    if numbers.get("flow_comparison") is not None:
        paths.append(error_figure(Path(f"{stem}_error_hist.png"), numbers, f"{module}, frame {frame}"))
    paths.append(save_rgb(f"{stem}_diversity.png", diversity_image(maps["diversity"])))
    paths.append(save_rgb(f"{stem}_warps.png", warp_image(maps, max_drawn)))
    return paths
