"""The G x N grid of a sweep over offset groups and offsets per group: PSNR and PSNR gain per
million extra parameters as tables and heatmaps (Fig. 16 of Chan et al., AAAI 2021).

With a seed axis the grid is over cells (:mod:`vsrlab.report.cells`): each shows the mean over seeds
and the half-width of its 95% t interval, the gain the seed-paired difference to the ``G = N = 1``
cell (:func:`paired_gain`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsrlab.report.cells import Cell, cell_keys
from vsrlab.report.jobs import MISSING, finite
from vsrlab.report.stats import paired_over_seeds
from vsrlab.report.table import markdown_table
from vsrlab.utils.figures import new_figure

if TYPE_CHECKING:
    pass

G_SUFFIX, N_SUFFIX = "deformable_groups", "num_offsets"
HEATMAP_PSNR = "heatmap_psnr.png"
HEATMAP_GAIN = "heatmap_gain_per_mparam.png"
METRIC_FIELDS = {"best": "best_psnr", "final": "final_psnr"}


def gn_keys(manifest: dict[str, Any]) -> tuple[str, str] | None:
    """The swept keys of the offset groups ``G`` and the offsets per group ``N``: the manifest's
    ``axes`` (recorded by the sweeper from the architecture's ``offset_axes``, e.g. TDAN's
    ``deform_groups``); sweeps written before manifests had axes fall back to the key names
    (:func:`find_gn_keys`). None unless both are swept."""
    axes = manifest.get("axes") or {}
    if "groups" in axes or "offsets" in axes:
        g, n = axes.get("groups"), axes.get("offsets")
        swept = manifest["swept_keys"]
        return (g, n) if g in swept and n in swept else None
    return find_gn_keys(manifest["swept_keys"])


def find_gn_keys(swept_keys: Sequence[str]) -> tuple[str, str] | None:
    """Legacy sweeps without ``axes`` in their manifest: the swept keys ending in ``deformable_groups``
    (G) and ``num_offsets`` (N); ``None`` unless both are swept."""
    g = next((k for k in swept_keys if k.rsplit(".", 1)[-1] == G_SUFFIX), None)
    n = next((k for k in swept_keys if k.rsplit(".", 1)[-1] == N_SUFFIX), None)
    return (g, n) if g and n else None


def _axis_number(value: Any) -> int | float | None:
    number = finite(value)
    if number is None:
        return None
    return int(number) if number.is_integer() else number


def gn_grid(
    rows: Sequence[dict[str, Any]], g_key: str, n_key: str, field: str
) -> tuple[list[int | float], list[int | float], np.ndarray]:
    """``(G values, N values, grid)``: ``grid[i, j]`` is ``row[field]`` of the job with ``G = G values[i]``
    and ``N = N values[j]`` (both ascending, over all jobs of the sweep, finished or not); NaN where
    there is no such job or it has no value.

    Raises ``ValueError`` when a job's ``G`` or ``N`` is not a number, or two jobs share a cell.
    """
    cells: dict[tuple[Any, Any], float] = {}
    for row in rows:
        g, n = _axis_number(row["swept"].get(g_key)), _axis_number(row["swept"].get(n_key))
        if g is None or n is None:
            raise ValueError(f"job {row['job']} has no numeric {g_key} / {n_key}")
        if (g, n) in cells:
            raise ValueError(f"two jobs have {g_key}={g}, {n_key}={n}")
        value = finite(row.get(field))
        cells[(g, n)] = math.nan if value is None else value
    g_values = sorted({g for g, _ in cells})
    n_values = sorted({n for _, n in cells})
    grid = np.full((len(g_values), len(n_values)), np.nan)
    for (g, n), value in cells.items():
        grid[g_values.index(g), n_values.index(n)] = value
    return g_values, n_values, grid


def gain_per_mparam(
    psnr: np.ndarray,
    params: np.ndarray,
    g_values: Sequence[float],
    n_values: Sequence[float],
    baseline: tuple[float, float] = (1, 1),
) -> np.ndarray:
    """PSNR gain per million extra parameters over the ``G = N = 1`` baseline (Fig. 16, right):

        gain(G, N) = (PSNR(G, N) - PSNR(1, 1)) / ((params(G, N) - params(1, 1)) / 1e6)   [dB / M]

    NaN for the baseline itself, for cells without PSNR or parameter count, and for cells without
    extra parameters (``params(G, N) <= params(1, 1)``).  Raises ``ValueError`` when the baseline job
    is not in the grid or has no PSNR or parameter count.
    """
    g0, n0 = baseline
    if g0 not in g_values or n0 not in n_values:
        raise ValueError(f"no G={g0}, N={n0} baseline job in the sweep")
    i, j = list(g_values).index(g0), list(n_values).index(n0)
    psnr0, params0 = psnr[i, j], params[i, j]
    if not (np.isfinite(psnr0) and np.isfinite(params0)):
        raise ValueError(f"the G={g0}, N={n0} baseline job has no PSNR or parameter count yet")
    extra = (np.asarray(params, dtype=float) - params0) / 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (np.asarray(psnr, dtype=float) - psnr0) / extra
    gain[~(extra > 0)] = np.nan  # baseline, fewer/equal params, and NaN params
    return gain


def _value_text(value: float, half_width: float | None, fmt: str, sep: str = " ") -> str:
    if half_width is None:
        return format(value, fmt)
    spread = "n/a" if not np.isfinite(half_width) else format(half_width, fmt)
    return f"{format(value, fmt)}{sep}± {spread}"


def markdown_grid(
    grid: np.ndarray,
    g_values: Sequence[float],
    n_values: Sequence[float],
    fmt: str = ".2f",
    half_widths: np.ndarray | None = None,
) -> str:
    """A G x N grid as a Markdown table (rows ``G=…``, columns ``N=…``, ``—`` for NaN); with
    ``half_widths``, cells read ``mean ± half-width`` (``± n/a`` without an interval)."""
    body = [
        [
            f"G={g}",
            *(
                MISSING
                if not np.isfinite(v)
                else _value_text(v, None if half_widths is None else half_widths[i, j], fmt)
                for j, v in enumerate(grid[i])
            ),
        ]
        for i, g in enumerate(g_values)
    ]
    return markdown_table(["G \\ N", *(f"N={n}" for n in n_values)], body)


def plot_heatmap(
    grid: np.ndarray,
    g_values: Sequence[float],
    n_values: Sequence[float],
    path: str | Path,
    title: str,
    colorbar_label: str,
    fmt: str = ".2f",
    half_widths: np.ndarray | None = None,
) -> Path:
    """Save a G x N heatmap (rows G ascending, columns N ascending), each cell annotated with its value
    (and ``± half-width`` below it when ``half_widths`` are given); NaN cells are left blank."""
    import matplotlib
    from matplotlib.ticker import ScalarFormatter

    path = Path(path)
    fig = new_figure((max(4.8, 1.6 + 1.1 * len(n_values)), 1.4 + 0.9 * len(g_values)))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    data = np.ma.masked_invalid(np.asarray(grid, dtype=float))
    image = ax.imshow(data, cmap=cmap, origin="upper", aspect="auto")
    colorbar = fig.colorbar(image, ax=ax, label=colorbar_label)
    colorbar.ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    finite_values = data.compressed()
    lo, hi = (finite_values.min(), finite_values.max()) if finite_values.size else (0.0, 0.0)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid[i, j]
            if np.isfinite(value):
                dark = hi > lo and (value - lo) / (hi - lo) < 0.5  # viridis is dark at the low end
                ax.text(
                    j,
                    i,
                    _value_text(value, None if half_widths is None else half_widths[i, j], fmt, "\n"),
                    ha="center",
                    va="center",
                    fontsize=9 if half_widths is None else 8,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(len(n_values)), [str(n) for n in n_values])
    ax.set_yticks(range(len(g_values)), [str(g) for g in g_values])
    ax.set_xlabel("N (offsets per group)")
    ax.set_ylabel("G (offset groups)")
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=120)
    return path


def paired_gain(
    cells: Sequence[Cell],
    g_key: str,
    n_key: str,
    field: str,
    g_values: Sequence[float],
    n_values: Sequence[float],
    params: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, half-width)`` per G x N cell: the PSNR difference to the ``G = N = 1`` cell paired by
    seed (mean and 95% t half-width over seeds) over the cell's extra parameters, in dB / M.  NaN
    as in :func:`gain_per_mparam`, and for half-widths of fewer than 2 paired seeds."""
    gain, half = np.full(params.shape, np.nan), np.full(params.shape, np.nan)
    at = {(_axis_number(c.swept.get(g_key)), _axis_number(c.swept.get(n_key))): c for c in cells}
    base = at.get((1, 1))
    if base is None or 1 not in g_values or 1 not in n_values:
        return gain, half
    params0 = params[list(g_values).index(1), list(n_values).index(1)]
    for (g, n), cell in at.items():
        i, j = list(g_values).index(g), list(n_values).index(n)
        extra = (params[i, j] - params0) / 1e6
        if cell is base or not extra > 0:
            continue
        diff = paired_over_seeds(cell.scores(field), base.scores(field)).seeds
        gain[i, j] = np.nan if diff.mean is None else diff.mean / extra
        half[i, j] = np.nan if diff.half_width is None else diff.half_width / extra
    return gain, half


def gn_section(
    manifest: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    out_dir: Path,
    metric: str,
    cells: Sequence[Cell] | None = None,
) -> tuple[list[str], list[Path]]:
    """The Markdown lines of the G x N section and the heatmaps written (none when not applicable);
    with ``cells`` (a seed axis), over the cells' means with their 95% half-widths."""
    keys = gn_keys(manifest)
    if keys is None:
        return [], []
    g_key, n_key = keys
    field, label = METRIC_FIELDS[metric], f"{metric} val PSNR"
    swept_keys = manifest["swept_keys"] if cells is None else cell_keys(manifest["swept_keys"])
    if cells is not None:
        rows = [cell.row() for cell in cells]
        label = f"{label}, mean ± 95% CI over seeds"
    lines = ["## G x N grid (Fig. 16 of Chan et al., AAAI 2021)", ""]
    others = [k for k in swept_keys if k not in keys and len({row["swept"].get(k) for row in rows}) > 1]
    if others:
        lines.append(f"Heatmaps skipped: other swept keys vary too ({', '.join(others)}).")
        return lines + [""], []
    try:
        g_values, n_values, psnr = gn_grid(rows, g_key, n_key, field)
        _, _, params = gn_grid(rows, g_key, n_key, "params")
    except ValueError as err:
        return lines + [f"Heatmaps skipped: {err}.", ""], []
    psnr_hw = None if cells is None else gn_grid(rows, g_key, n_key, f"{field}_hw")[2]
    written: list[Path] = []
    lines += [f"### {label} (dB)", "", markdown_grid(psnr, g_values, n_values, half_widths=psnr_hw), ""]
    if np.isfinite(psnr).any():
        written.append(
            plot_heatmap(
                psnr,
                g_values,
                n_values,
                out_dir / HEATMAP_PSNR,
                f"{label} (dB)".replace(", mean", "\nmean"),
                "PSNR (dB)",
                ".2f",
                psnr_hw,
            )
        )
    else:
        lines += [f"`{HEATMAP_PSNR}` not written: no job has a {label} yet.", ""]
    what = "" if cells is None else ", paired by seed"
    lines += [f"### PSNR gain per 1M extra parameters over G=1, N=1{what} (dB / M)", ""]
    try:
        gain = gain_per_mparam(psnr, params, g_values, n_values)
    except ValueError as err:
        lines += [f"Gain heatmap skipped: {err}.", ""]
    else:
        gain_hw = None
        if cells is not None:
            gain, gain_hw = paired_gain(cells, g_key, n_key, field, g_values, n_values, params)
        lines += [markdown_grid(gain, g_values, n_values, ".3f", gain_hw), ""]
        if np.isfinite(gain).any():
            written.append(
                plot_heatmap(
                    gain,
                    g_values,
                    n_values,
                    out_dir / HEATMAP_GAIN,
                    f"{metric} val PSNR gain per 1M extra params (dB / M)"
                    + ("" if cells is None else "\nseed-paired mean ± 95% CI"),
                    "dB per 1M params",
                    ".3f",
                    gain_hw,
                )
            )
        else:
            lines += [f"`{HEATMAP_GAIN}` not written: no job with extra parameters has a result yet.", ""]
    if written:
        lines += ["Heatmaps: " + ", ".join(f"`{p.name}`" for p in written) + ".", ""]
    return lines, written
