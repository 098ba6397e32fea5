"""Offset diversity against PSNR over the jobs of a sweep: Pearson r and a scatter (Fig. 9 of
Chan et al., AAAI 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsrlab.report.grid import METRIC_FIELDS, new_figure
from vsrlab.report.jobs import finite

SCATTER = "diversity_vs_psnr.png"


@dataclass
class Correlation:
    """Pearson correlation of ``n`` points; ``r`` and ``p`` are ``None`` when it is not computed, and
    ``reason`` says why."""

    n: int
    r: float | None = None
    p: float | None = None
    reason: str | None = None

    def sentence(self) -> str:
        """``Pearson r = 0.912 (p = 0.0312, 5 jobs)``, or why it was not computed."""
        if self.r is None:
            return f"Pearson r not computed: {self.reason}"
        return f"Pearson r = {self.r:.3f} (p = {self.p:.3g}, {self.n} jobs)"


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


def pearson_correlation(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Pearson r and its two-sided p-value (:func:`scipy.stats.pearsonr`), computed only with at least
    3 points and when neither variable is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3:
        return Correlation(
            n, reason=f"{n} job{'s' if n != 1 else ''} with both offset diversity and PSNR (needs at least 3)"
        )
    if np.ptp(x) == 0:
        return Correlation(n, reason=f"offset diversity is the same for all {n} jobs")
    if np.ptp(y) == 0:
        return Correlation(n, reason=f"PSNR is the same for all {n} jobs")
    from scipy.stats import pearsonr

    result = pearsonr(x, y)
    return Correlation(n, r=float(result.statistic), p=float(result.pvalue))


def plot_diversity_scatter(
    points: Sequence[tuple[str, float, float]],
    path: str | Path,
    psnr_label: str,
    correlation: Correlation | None = None,
) -> Path:
    """Save the offset diversity vs PSNR scatter, each point labelled with its job."""
    path = Path(path)
    fig = new_figure((8.0, 5.0))
    ax = fig.add_subplot()
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    ax.scatter(xs, ys, color="tab:blue")
    for job, x, y in points:
        ax.annotate(job, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set_xlabel("offset diversity")
    ax.set_ylabel(psnr_label)
    title = "Offset diversity vs PSNR"
    if correlation is not None and correlation.r is not None:
        title += f" (r = {correlation.r:.3f}, p = {correlation.p:.3g})"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
    return path


def correlation_section(
    rows: Sequence[dict[str, Any]], out_dir: Path, metric: str
) -> tuple[list[str], Correlation, Path | None]:
    """The Markdown lines of the offset diversity vs PSNR section, the correlation and the scatter
    written (``None`` when the correlation is not computed)."""
    field, label = METRIC_FIELDS[metric], f"{metric} val PSNR (dB)"
    points = diversity_points(rows, field)
    correlation = pearson_correlation([p[1] for p in points], [p[2] for p in points])
    lines = [
        "## Offset diversity vs PSNR (Fig. 9 of Chan et al., AAAI 2021)",
        "",
        f"{correlation.sentence()} — offset diversity against the {metric} val PSNR.",
        "",
    ]
    scatter = None
    if correlation.r is not None:
        scatter = plot_diversity_scatter(points, out_dir / SCATTER, label, correlation)
        lines += [f"Scatter: `{scatter.name}`.", ""]
    return lines, correlation, scatter
