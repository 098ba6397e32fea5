"""The results table of a Hydra multirun sweep (``vsrlab-report sweep_dir=<sweep>``).

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
  with scores per motion bin (``model.evaluation.motion_bins``; :mod:`vsrlab.report.motion`);
* with a ``seed`` axis (a swept key named ``seed``): the jobs that differ only in their seed form a cell
  (:mod:`vsrlab.report.cells`); ``report.md`` leads with the cell table (``mean ± 95% half-width (n)``,
  t interval over seeds; :mod:`vsrlab.report.stats`), then the per-job table; ``report_cells.csv``
  has one row per cell, ``report.csv`` stays one row per job with its cell's statistics appended;
  heatmaps, correlation and motion figures use the cells' means and show their intervals;
* the differences of every cell to a baseline cell, paired by seed and test clip, with the verdict of
  the seed-level 95% interval (``--baseline key=value[,key=value]``; a G x N sweep with seeds uses
  ``G = N = 1`` without one; :mod:`vsrlab.report.differences`), also as ``report_differences.csv``.

The table is also printed to the console with rich. ``--metric best|final`` chooses which validation
PSNR (the best one of the validation history, or the last one) the heatmaps, the correlation and the
differences use.

    vsrlab-report sweep_dir=logs/train/multiruns/offset_diversity
    vsrlab-report sweep_dir=logs/train/multiruns/offset_diversity out=reports/od metric=final
    vsrlab-report sweep_dir=logs/train/multiruns/seeds 'baseline={experiment:align_none}'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsrlab.report.cells import (
    CELLS_CSV,
    Cell,
    cell_keys,
    cells_markdown,
    cells_rich_table,
    group_cells,
    job_stat_cells,
    seed_key,
    stat_columns,
    status_summary,
    write_cells_csv,
)
from vsrlab.report.correlation import Correlation, correlation_section, pearson_correlation
from vsrlab.report.differences import (
    Difference,
    default_baseline,
    differences_section,
    parse_baseline,
    resolve_baseline,
)
from vsrlab.report.grid import METRIC_FIELDS, find_gn_keys, gain_per_mparam, gn_grid, gn_keys, gn_section
from vsrlab.report.jobs import MISSING, as_int, best_and_final, collect_jobs, finite, format_params, read_job
from vsrlab.report.motion import motion_section
from vsrlab.report.stats import Paired, Summary, fisher_interval, summarize
from vsrlab.report.table import (
    FIXED_COLUMNS,
    column_headers,
    display_cells,
    job_columns,
    markdown_table,
    md_escape,
    rich_table,
    table_columns,
    write_csv,
)
from vsrlab.run.manifest import parse_overrides

NO_BASELINE = "none"


def render_markdown(
    manifest: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    metric: str,
    sections: Sequence[Sequence[str]],
    cells: Sequence[Cell] | None = None,
) -> str:
    """The whole ``report.md``: title, table (with ``cells``: the cell table, then the jobs), the given
    sections, then notes on failed jobs."""
    swept = manifest["swept_keys"]
    columns = job_columns(rows)
    jobs_table = markdown_table(
        table_columns(swept, columns), (display_cells(row, swept, columns) for row in rows)
    )
    lines = [
        f"# Sweep report: {manifest['name']}",
        "",
        f"Sweep directory: `{manifest['sweep_dir']}` (jobs from {manifest['source']}) · "
        f"{len(rows)} jobs ({status_summary(rows)}) · swept: "
        f"{', '.join(f'`{k}`' for k in swept) or 'nothing'} · heatmaps and correlation use the "
        f"**{metric}** val PSNR.",
        "",
    ]
    if cells is None:
        lines += [jobs_table, ""]
    else:
        counts = sorted({len(c.jobs) for c in cells})
        seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        lines += [
            "## Cells: mean ± 95% CI over seeds (n)",
            "",
            f"{len(cells)} cell{'s' if len(cells) != 1 else ''} of {seeds} seeds. Each score: mean over "
            "the cell's seeds ± half-width of the 95% t interval of the mean (Student's t, n - 1 degrees "
            "of freedom) (number of seeds with a value); one seed gives no interval (`± n/a`). Numbers: "
            f"`{CELLS_CSV}`.",
            "",
            cells_markdown(cells, swept, stat_columns(rows)),
            "",
            "## Jobs",
            "",
            jobs_table,
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
    """What :func:`write_report` wrote and found: ``cells`` with a seed axis (else None), the
    ``differences`` to the baseline (empty without one)."""

    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    correlation: Correlation
    written: list[Path] = field(default_factory=list)
    cells: list[Cell] | None = None
    differences: list[Difference] = field(default_factory=list)


def choose_baseline(
    manifest: dict[str, Any], cells: Sequence[Cell], baseline: str | None, seeded: bool
) -> tuple[dict[str, str] | None, bool]:
    """The baseline spec (full keys) and whether it was chosen automatically: ``baseline`` when given
    (``none``: no baseline), else ``G = N = 1`` of a G x N sweep with a seed axis.  Raises
    ``ValueError`` for a malformed ``baseline`` or a key that is not swept."""
    if baseline is not None:
        if baseline.strip().lower() == NO_BASELINE:
            return None, False
        return resolve_baseline(parse_baseline(baseline), manifest["swept_keys"]), False
    spec = default_baseline(manifest, cells) if seeded else None
    return spec, spec is not None


def write_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    metric: str = "best",
    baseline: str | None = None,
) -> Report:
    """Write ``report.md``, ``report.csv`` and the figures of the sweep in ``sweep_dir`` into
    ``out_dir`` (default: the sweep directory), using the ``metric`` (``best`` | ``final``)
    validation PSNR for the heatmaps, the correlation and the differences to the ``baseline`` cell
    (``key=value[,key=value]``, :func:`choose_baseline`).

    Raises:
        vsrlab.run.ManifestError: the sweep cannot be read (missing, unreadable manifest, no jobs).
        ValueError: ``baseline`` is malformed or names a key that is not swept.
    """
    manifest, rows = collect_jobs(sweep_dir)
    swept = manifest["swept_keys"]
    seeded = seed_key(swept) is not None
    all_cells = group_cells(rows, swept)
    cells = all_cells if seeded else None
    spec, automatic = choose_baseline(manifest, all_cells, baseline, seeded)
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    gn_lines, heatmaps = gn_section(manifest, rows, out, metric, cells)
    corr_lines, correlation, scatter = correlation_section(rows, out, metric, cells)
    motion_lines, motion_figures = motion_section(manifest, rows, out)
    diff_lines: list[str] = []
    diffs: list[Difference] = []
    diff_csv = None
    if spec is not None:
        val = (f"{metric} val PSNR", METRIC_FIELDS[metric])
        metrics = [val, *[c for c in stat_columns(rows) if c[1] == "test_psnr"]]
        diff_lines, diffs, diff_csv = differences_section(all_cells, spec, metrics, out, automatic)
    extra = job_stat_cells(rows, cells, stat_columns(rows)) if cells is not None else None
    csv_path = write_csv(out / "report.csv", rows, swept, job_columns(rows), extra)
    written = [csv_path]
    if cells is not None:
        written.append(write_cells_csv(out / CELLS_CSV, cells, swept, stat_columns(rows)))
    md_path = out / "report.md"
    sections = [diff_lines, gn_lines, corr_lines, motion_lines]
    md_path.write_text(render_markdown(manifest, rows, metric, sections, cells))
    figures = [*heatmaps, *([scatter] if scatter else []), *motion_figures]
    written = [md_path, *written, *([diff_csv] if diff_csv else []), *figures]
    return Report(manifest, rows, correlation, written, cells, diffs)


def print_report(report: Report, metric: str) -> None:
    """The table(s), the differences' verdicts, the correlation and the files written, on the console."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, 200)  # piped or logged: no squeezing into 80 columns
    manifest, rows = report.manifest, report.rows
    title = f"{manifest['name']} ({status_summary(rows)})"
    columns = job_columns(rows)
    if report.cells is not None:
        cell_title = f"{manifest['name']}: mean ± 95% CI over seeds (n)"
        console.print(cells_rich_table(cell_title, report.cells, manifest["swept_keys"], stat_columns(rows)))
    console.print(rich_table(title, rows, manifest["swept_keys"], columns))
    for diff in report.differences:
        s = diff.paired.seeds
        mean = "—" if s.mean is None else f"{s.mean:+.3f} dB"
        console.print(
            f"{diff.cell} - {diff.baseline} ({diff.metric}): {mean}, 95% CI over seeds "
            f"{s.interval_text()}: {diff.paired.verdict()}",
            highlight=False,
        )
    console.print(f"offset diversity vs {metric} val PSNR: {report.correlation.sentence()}", highlight=False)
    if report.correlation.noise:
        console.print(report.correlation.noise, highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in report.written), highlight=False)


__all__ = [
    "CELLS_CSV",
    "FIXED_COLUMNS",
    "METRIC_FIELDS",
    "MISSING",
    "Cell",
    "Correlation",
    "Difference",
    "Paired",
    "Report",
    "Summary",
    "as_int",
    "best_and_final",
    "collect_jobs",
    "cell_keys",
    "choose_baseline",
    "column_headers",
    "find_gn_keys",
    "finite",
    "fisher_interval",
    "format_params",
    "gain_per_mparam",
    "gn_grid",
    "gn_keys",
    "group_cells",
    "parse_overrides",
    "pearson_correlation",
    "print_report",
    "read_job",
    "render_markdown",
    "seed_key",
    "summarize",
    "write_report",
]
