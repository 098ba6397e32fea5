"""Figures of learned offsets versus optical flow (Chan et al., AAAI 2021, Figs. 4-6).

Drawn by :func:`vsrlab.analysis.offsets.run_offsets` from the maps of
:func:`~vsrlab.analysis.offsets.analyse_frame`, for one module and one neighbour frame:

- ``*_flows.png`` (Fig. 4): flow colours (hue = direction, saturation = length, white = no motion, one
  scale for the whole grid, with its colour wheel); one row per offset group, the reference flow first,
  then the group's N learned offsets;
- ``*_residual.png``: the same for offset minus flow prior (flow-guided alignment, BasicVSR++);
- ``*_error_hist.png`` (Fig. 5): distribution of ``|offset - flow|`` over valid pixels, and for N > 1
  the mean L1 distance of the offsets ranked from closest to farthest (Fig. 6);
- ``*_diversity.png`` (Fig. 9): pixelwise offset diversity per group, with colour bars in pixels;
- ``*_warps.png`` (Fig. 4): centre frame | neighbour | neighbour warped by the reference flow | warped by
  individual offsets, each captioned with its PSNR against the centre frame (also in the JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from vsrlab.utils.figures import Panel, panel_figure
from vsrlab.utils.images import to_uint8_hwc


def _hwc(flow: Tensor) -> np.ndarray:
    """``(2, h, w)`` tensor -> ``(h, w, 2)`` array."""
    return flow.detach().float().cpu().permute(1, 2, 0).numpy()


def _tile(panels: int) -> float:
    """Inches per panel: smaller for big grids (G = 8 x N = 9 stays under ~1600 px wide)."""
    return 1.6 if panels <= 6 else 1.25


def flow_figure(path: str | Path, flows: Tensor, title: str, ref: Tensor | None = None,
                ref_caption: str = "reference flow") -> Path:  # fmt: skip
    """Flow colours of the offsets, one row per group: ``[ref,] flows[g, 0], ..., flows[g, N-1]``, one
    colour scale (99th percentile of the lengths, robust to outliers) with its wheel.

    Args:
        flows: ``(G, N, 2, h, w)`` ``(x, y)``; ref: ``(2, h, w)`` or None.
    """
    mags = flows.detach().float().norm(dim=2).flatten().cpu().numpy()
    if ref is not None:
        mags = np.concatenate([mags, ref.detach().float().norm(dim=0).flatten().cpu().numpy()])
    top = float(np.quantile(mags, 0.99)) or None
    g, n = flows.shape[:2]
    rows = []
    for i in range(g):
        row = [] if ref is None else [Panel(_hwc(ref), ref_caption, "flow", top)]
        row += [Panel(_hwc(flows[i, k]), f"offset {k + 1}", "flow", top) for k in range(n)]
        rows.append(row)
    panel_figure(rows, title, path, row_labels=[f"group {i}" for i in range(g)], tile=_tile(g * n))
    return Path(path)


def diversity_figure(path: str | Path, diversity: Tensor, title: str) -> Path:
    """``(G, h, w)`` pixelwise offset diversity, one panel per group on one scale (its maximum)."""
    values = diversity.detach().float().cpu().numpy()
    top = float(values.max()) or None
    rows = [[Panel(v, f"group {i}", "heatmap", top, "diversity (px)") for i, v in enumerate(values)]]
    panel_figure(rows, title, path, tile=_tile(len(values)))
    return Path(path)


def _psnr(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} dB"


def warp_figure(
    path: str | Path, maps: dict[str, Any], numbers: dict[str, Any], title: str, max_drawn: int
) -> Path:
    """Centre | neighbour | reference-flow warp (if any) | the first ``max_drawn`` offset warps, each with
    its PSNR against the centre frame (``numbers['warps']``)."""
    scores = numbers["warps"]
    images = [(maps["centre"], "centre frame\n(target)"),
              (maps["neighbour"], f"neighbour\n{_psnr(scores['unaligned_psnr'])}")]  # fmt: skip
    if maps.get("ref_warp") is not None:
        images.append((maps["ref_warp"], f"warped by flow\n{_psnr(scores['reference_flow_psnr'])}"))
    for (g, k, warp), score in list(zip(maps["warps"], scores["offset_psnr"], strict=True))[:max_drawn]:
        images.append((warp, f"group {g}, offset {k + 1}\n{_psnr(score['psnr'])}"))
    rows = [[Panel(to_uint8_hwc(x), caption) for x, caption in images]]
    panel_figure(rows, f"{title} (PSNR against the centre frame, {scores['psnr_valid']})", path,
                 tile=_tile(len(images)))  # fmt: skip
    return Path(path)


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
    name = f"{module}, frame {frame}"
    paths = [flow_figure(f"{stem}_flows.png", maps["flows"], f"{name}: learned offsets", maps.get("ref"))]
    if maps.get("residual") is not None:
        paths.append(flow_figure(f"{stem}_residual.png", maps["residual"], f"{name}: offset - flow prior"))
    if numbers.get("flow_comparison") is not None:
        paths.append(error_figure(Path(f"{stem}_error_hist.png"), numbers, name))
    paths.append(diversity_figure(f"{stem}_diversity.png", maps["diversity"], f"{name}: offset diversity"))
    paths.append(warp_figure(f"{stem}_warps.png", maps, numbers, f"{name}: warps", max_drawn))
    return paths
