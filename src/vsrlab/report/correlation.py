"""Offset diversity against PSNR over the jobs of a sweep: Pearson r with its 95% interval (Fisher z)
and a scatter (Fig. 9 of Chan et al., AAAI 2021).

With a seed axis the points are the cells' means over seeds (:mod:`vsrlab.report.cells`), and the
section warns when the PSNR differences it relates are within noise: the cell means span less than a
cell's typical (median) 95% half-width.  Without one, it says that the seed noise is unknown."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrlab.report.cells import Cell
from vsrlab.report.grid import METRIC_FIELDS
from vsrlab.report.jobs import finite
from vsrlab.report.stats import fisher_interval
from vsrlab.utils.figures import new_figure

SCATTER = "diversity_vs_psnr.png"


@dataclass
class Correlation:
    """Pearson correlation of ``n`` points (``unit``: jobs or cells); ``r`` and ``p`` are ``None``
    when it is not computed, and ``reason`` says why; ``interval`` is the 95% Fisher z interval
    (None for ``n <= 3``); ``noise`` the warning or note on the PSNR differences it relates."""

    n: int
    r: float | None = None
    p: float | None = None
    reason: str | None = None
    unit: str = "jobs"
    interval: tuple[float, float] | None = None
    noise: str | None = None

    def sentence(self) -> str:
        """``Pearson r = 0.912 (p = 0.0312, 5 jobs), 95% CI [0.143, 0.994]``, or why it was not
        computed."""
        if self.r is None:
            return f"Pearson r not computed: {self.reason}"
        ci = (
            f"95% CI [{self.interval[0]:.3f}, {self.interval[1]:.3f}] (Fisher z)"
            if self.interval
            else "95% CI undefined for n <= 3"
        )
        return f"Pearson r = {self.r:.3f} (p = {self.p:.3g}, {self.n} {self.unit}), {ci}"


def diversity_points(
    rows: Sequence[dict[str, Any]], field: str = "best_psnr"
) -> list[tuple[str, float, float]]:
    """``(job, offset diversity, PSNR)`` of the jobs having both as finite numbers."""
    points = []
    for row in rows:
        x, y = finite(row.get("offset_diversity")), finite(row.get(field))
        if x is not None and y is not None:
            points.append((row["job"], x, y))
    return points


def pearson_correlation(x: Sequence[float], y: Sequence[float], unit: str = "jobs") -> Correlation:
    """Pearson r, its two-sided p-value (:func:`scipy.stats.pearsonr`) and 95% Fisher z interval,
    computed only with at least 3 points and when neither variable is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    one = unit.removesuffix("s")
    if n < 3:
        return Correlation(
            n,
            reason=f"{n} {one if n == 1 else unit} with both offset diversity and PSNR (needs at least 3)",
            unit=unit,
        )
    if np.ptp(x) == 0:
        return Correlation(n, reason=f"offset diversity is the same for all {n} {unit}", unit=unit)
    if np.ptp(y) == 0:
        return Correlation(n, reason=f"PSNR is the same for all {n} {unit}", unit=unit)
    from scipy.stats import pearsonr

    result = pearsonr(x, y)
    r = float(result.statistic)
    return Correlation(n, r=r, p=float(result.pvalue), unit=unit, interval=fisher_interval(r, n))


def noise_note(
    psnr: Sequence[float], half_widths: Sequence[float | None] | None, stds: Sequence[float | None] | None
) -> str:
    """The warning when the PSNR values a correlation relates differ by less than their noise (the
    cells' median 95% half-width), or, without seeds, the note that the noise is unknown."""
    spread = float(np.ptp(psnr)) if len(psnr) else 0.0
    if half_widths is None or stds is None:
        return (
            f"PSNR spans {spread:.3f} dB over these jobs; with one job per configuration the seed noise "
            "is unknown: sweep `seed` (>= 3 seeds) to tell signal from noise."
        )
    known = [(h, s) for h, s in zip(half_widths, stds, strict=True) if h is not None and s is not None]
    if not known:
        return (
            f"warning: PSNR cell means span {spread:.3f} dB, but no cell has 2 seeds: the noise is unknown."
        )
    typical, std = statistics.median(h for h, _ in known), statistics.median(s for _, s in known)
    if spread < typical:
        return (
            f"warning: the PSNR cell means span {spread:.3f} dB, less than a cell's typical 95% half-width "
            f"({typical:.3f} dB; seed std {std:.3f} dB): the PSNR differences this correlation relates are "
            "within noise."
        )
    return (
        f"PSNR cell means span {spread:.3f} dB, more than a cell's typical 95% half-width ({typical:.3f} dB; "
        f"seed std {std:.3f} dB)."
    )


def plot_diversity_scatter(
    points: Sequence[tuple[str, float, float]],
    path: str | Path,
    psnr_label: str,
    correlation: Correlation | None = None,
    half_widths: Sequence[float | None] | None = None,
) -> Path:
    """Save the offset diversity vs PSNR scatter, each point labelled with its job (or cell), with
    95% error bars of the PSNR when ``half_widths`` are given."""
    path = Path(path)
    fig = new_figure((8.0, 5.0))
    ax = fig.add_subplot()
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    if half_widths is None:
        ax.scatter(xs, ys, color="tab:blue")
    else:
        errors = [0.0 if h is None else h for h in half_widths]
        ax.errorbar(xs, ys, yerr=errors, fmt="o", color="tab:blue", capsize=3)
    for job, x, y in points:
        ax.annotate(job, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set_xlabel("offset diversity")
    ax.set_ylabel(psnr_label)
    ax.yaxis.get_major_formatter().set_useOffset(False)
    title = "Offset diversity vs PSNR"
    if correlation is not None and correlation.r is not None:
        title += f" (r = {correlation.r:.3f}, p = {correlation.p:.3g}"
        if correlation.interval is not None:
            title += f", 95% CI [{correlation.interval[0]:.2f}, {correlation.interval[1]:.2f}]"
        title += ")"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    return path


def correlation_section(
    rows: Sequence[dict[str, Any]], out_dir: Path, metric: str, cells: Sequence[Cell] | None = None
) -> tuple[list[str], Correlation, Path | None]:
    """The Markdown lines of the offset diversity vs PSNR section, the correlation and the scatter
    written (``None`` when the correlation is not computed); with ``cells``, over their means."""
    field, label = METRIC_FIELDS[metric], f"{metric} val PSNR (dB)"
    half_widths = stds = None
    if cells is None:
        points = diversity_points(rows, field)
    else:
        cell_rows = [cell.row() for cell in cells]
        points = diversity_points(cell_rows, field)
        used = [
            cell for cell, row in zip(cells, cell_rows, strict=True) if row["job"] in {p[0] for p in points}
        ]
        half_widths = [cell.stats[field].half_width for cell in used]
        stds = [cell.stats[field].std for cell in used]
        label = f"{metric} val PSNR, mean over seeds (dB)"
    unit = "jobs" if cells is None else "cells"
    correlation = pearson_correlation([p[1] for p in points], [p[2] for p in points], unit)
    if correlation.r is not None:
        correlation.noise = noise_note([p[2] for p in points], half_widths, stds)
    of = f"the {metric} val PSNR" if cells is None else f"the mean {metric} val PSNR of each cell"
    lines = [
        "## Offset diversity vs PSNR (Fig. 9 of Chan et al., AAAI 2021)",
        "",
        f"{correlation.sentence()} — offset diversity against {of}.",
        "",
    ]
    if correlation.noise:
        lines += [correlation.noise, ""]
    scatter = None
    if correlation.r is not None:
        scatter = plot_diversity_scatter(points, out_dir / SCATTER, label, correlation, half_widths)
        lines += [f"Scatter: `{scatter.name}`.", ""]
    return lines, correlation, scatter
