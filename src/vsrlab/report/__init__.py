"""The results table of a Hydra multirun sweep (``vsrlab-report <sweep dir>``).

Reads the sweep manifest (``sweep.json``, or, for older sweeps without one, the job directories and
their ``.hydra/overrides.yaml``) and every job's ``done`` marker, ``status.json`` and ``metrics.json``,
then writes into the output directory (the sweep directory unless ``--out`` is given):

* ``report.csv``: one row per job, in manifest order: plain numbers, empty cells for missing values;
* ``report.md``: the same table for humans, then the sections below as notes;
* ``heatmap_psnr.png`` and ``heatmap_gain_per_mparam.png`` when the sweep is a grid over offset groups
  ``G`` and offsets per group ``N`` (the manifest's ``axes``, from the architecture's
  ``offset_axes``: ``deformable_groups`` / ``num_offsets`` for EDVR, ``deform_groups`` /
  ``num_offsets`` for TDAN): PSNR, and PSNR gain per million extra parameters over the ``G = N = 1`` baseline,
  as in Fig. 16 of Chan et al., "Understanding Deformable Alignment in Video Super-Resolution"
  (AAAI 2021);
* ``diversity_vs_psnr.png`` with the Pearson correlation between offset diversity and PSNR over the
  jobs, the relation of Fig. 9 of the same paper;
* ``motion_psnr.png`` (and ``motion_gain.png`` over a job without alignment) when jobs were tested
  with scores per motion bin (``model.evaluation.motion_bins``; :mod:`vsrlab.report.motion`).

The table is also printed to the console with rich. ``--metric best|final`` chooses which validation
PSNR (the best one of the validation history, or the last one) the heatmaps and the correlation use.

    vsrlab-report logs/train/multiruns/offset_diversity
    vsrlab-report logs/train/multiruns/offset_diversity --out reports/od --metric final
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsrlab.report.correlation import Correlation, correlation_section, pearson_correlation
from vsrlab.report.grid import METRIC_FIELDS, find_gn_keys, gain_per_mparam, gn_grid, gn_keys, gn_section
from vsrlab.report.jobs import MISSING, as_int, best_and_final, collect_jobs, finite, format_params, read_job
from vsrlab.report.motion import motion_section
from vsrlab.report.table import (
    FIXED_COLUMNS,
    column_headers,
    display_cells,
    markdown_table,
    md_escape,
    rich_table,
    table_columns,
    write_csv,
)
from vsrlab.run.manifest import parse_overrides


def status_summary(rows: Sequence[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def render_markdown(
    manifest: dict[str, Any], rows: Sequence[dict[str, Any]], metric: str, sections: Sequence[Sequence[str]]
) -> str:
    """The whole ``report.md``: title, table, the given sections, then notes on failed jobs."""
    swept = manifest["swept_keys"]
    lines = [
        f"# Sweep report: {manifest['name']}",
        "",
        f"Sweep directory: `{manifest['sweep_dir']}` (jobs from {manifest['source']}) · "
        f"{len(rows)} jobs ({status_summary(rows)}) · swept: "
        f"{', '.join(f'`{k}`' for k in swept) or 'nothing'} · heatmaps and correlation use the "
        f"**{metric}** val PSNR.",
        "",
        markdown_table(table_columns(swept), (display_cells(row, swept) for row in rows)),
        "",
    ]
    for section in sections:
        lines += list(section)
    failed = [row for row in rows if row["status"] == "failed"]
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{row['job']}`: {md_escape(row['error'] or 'no error message')}" for row in failed]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


@dataclass
class Report:
    """What :func:`write_report` wrote and found."""

    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    correlation: Correlation
    written: list[Path] = field(default_factory=list)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None, metric: str = "best") -> Report:
    """Write ``report.md``, ``report.csv`` and the figures of the sweep in ``sweep_dir`` into
    ``out_dir`` (default: the sweep directory), using the ``metric`` (``best`` | ``final``)
    validation PSNR for the heatmaps and the correlation.

    Raises:
        vsrlab.run.ManifestError: the sweep cannot be read (missing, unreadable manifest, no jobs).
    """
    manifest, rows = collect_jobs(sweep_dir)
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    gn_lines, heatmaps = gn_section(manifest, rows, out, metric)
    corr_lines, correlation, scatter = correlation_section(rows, out, metric)
    motion_lines, motion_figures = motion_section(manifest, rows, out)
    csv_path = write_csv(out / "report.csv", rows, manifest["swept_keys"])
    md_path = out / "report.md"
    md_path.write_text(render_markdown(manifest, rows, metric, [gn_lines, corr_lines, motion_lines]))
    figures = [*heatmaps, *([scatter] if scatter else []), *motion_figures]
    return Report(manifest, rows, correlation, [md_path, csv_path, *figures])


def print_report(report: Report, metric: str) -> None:
    """The table, the correlation and the files written, on the console."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, 200)  # piped or logged: no squeezing into 80 columns
    manifest, rows = report.manifest, report.rows
    console.print(rich_table(f"{manifest['name']} ({status_summary(rows)})", rows, manifest["swept_keys"]))
    console.print(f"offset diversity vs {metric} val PSNR: {report.correlation.sentence()}", highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in report.written), highlight=False)


__all__ = [
    "FIXED_COLUMNS",
    "METRIC_FIELDS",
    "MISSING",
    "Correlation",
    "Report",
    "as_int",
    "best_and_final",
    "collect_jobs",
    "column_headers",
    "find_gn_keys",
    "finite",
    "format_params",
    "gain_per_mparam",
    "gn_grid",
    "gn_keys",
    "parse_overrides",
    "pearson_correlation",
    "print_report",
    "read_job",
    "render_markdown",
    "write_report",
]
