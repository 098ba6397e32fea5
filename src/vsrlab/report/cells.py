"""Cells of a sweep with a ``seed`` axis: the jobs that differ only in their seed, with the mean,
standard deviation and 95% t interval of each score over the seeds (:mod:`vsrlab.report.stats`).

``report.md`` shows a cell's score as ``mean ± half-width (n)``; ``report_cells.csv`` (one row per
cell) and the per-job ``report.csv`` (each job with its cell's statistics) have them as plain numbers:
``<metric> mean``, ``<metric> ci95`` (the half-width), ``<metric> std`` and ``<metric> n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsrlab.report.jobs import MISSING, finite, format_params
from vsrlab.report.stats import Summary, summarize
from vsrlab.report.table import TEST_COLUMN, column_headers, markdown_table, write_rows

if TYPE_CHECKING:
    from rich.table import Table

SEED_KEY = "seed"
#: the scores summarised over seeds: (header, job row field)
STAT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("best val PSNR", "best_psnr"),
    ("best val SSIM", "best_ssim"),
    ("final val PSNR", "final_psnr"),
    ("final val SSIM", "final_ssim"),
)
STAT_SUFFIXES = ("mean", "ci95", "std", "n")
CELLS_CSV = "report_cells.csv"


def seed_key(swept_keys: Sequence[str]) -> str | None:
    """The seed axis: the swept key named ``seed``, None when the sweep has none."""
    return SEED_KEY if SEED_KEY in swept_keys else None


def cell_keys(swept_keys: Sequence[str]) -> list[str]:
    """The swept keys that tell cells apart: all but the seed."""
    return [k for k in swept_keys if k != SEED_KEY]


def status_summary(rows: Sequence[dict[str, Any]]) -> str:
    """``3 done, 1 running``: the number of rows in each state, in order of first appearance."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def cell_label(swept: dict[str, str], keys: Sequence[str]) -> str:
    """``deformable_groups=1,num_offsets=9``, or ``all`` when only the seed is swept."""
    names = column_headers(list(keys))
    return ",".join(f"{names[k]}={swept.get(k, MISSING)}" for k in keys) or "all"


def stat_columns(rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """:data:`STAT_COLUMNS`, with the test PSNR when a job has one."""
    has_test = any(row.get("test_psnr") is not None for row in rows)
    return (*STAT_COLUMNS, TEST_COLUMN) if has_test else STAT_COLUMNS


@dataclass
class Cell:
    """The jobs of one configuration (manifest order) and the :class:`Summary` of each score field."""

    label: str
    swept: dict[str, str]
    jobs: list[dict[str, Any]]
    stats: dict[str, Summary] = field(default_factory=dict)

    @property
    def seeds(self) -> list[str | None]:
        return [job["swept"].get(SEED_KEY) for job in self.jobs]

    def scores(self, name: str) -> dict[str | None, float]:
        """``{seed: value}`` of a job row field, for the jobs that have it."""
        out = {}
        for job in self.jobs:
            value = finite(job.get(name))
            if value is not None:
                out[job["swept"].get(SEED_KEY)] = value
        return out

    def clip_scores(self) -> dict[str | None, dict[str, float]]:
        """``{seed: {clip: test PSNR}}`` of the jobs with per-clip test scores."""
        return {job["swept"].get(SEED_KEY): job["test_clips"] for job in self.jobs if job.get("test_clips")}

    def row(self) -> dict[str, Any]:
        """The cell as a job-like row: score fields are means over seeds, ``<field>_hw`` their 95%
        half-widths, ``params`` and ``offset_diversity`` means, ``status`` a count per state."""
        params = summarize(finite(job["params"]) for job in self.jobs).mean
        states = {job["status"] for job in self.jobs}
        row: dict[str, Any] = {
            "job": self.label,
            "dir": None,
            "swept": self.swept,
            "params": None if params is None else round(params),
            "offset_diversity": summarize(finite(job["offset_diversity"]) for job in self.jobs).mean,
            "status": status_summary(self.jobs),
            "state": states.pop() if len(states) == 1 else None,
            "seeds": len(self.jobs),
        }
        for name, summary in self.stats.items():
            row[name], row[f"{name}_hw"], row[f"{name}_n"] = summary.mean, summary.half_width, summary.n
        return row


def group_cells(rows: Sequence[dict[str, Any]], swept_keys: Sequence[str]) -> list[Cell]:
    """One :class:`Cell` per combination of the swept values other than the seed, in order of first
    appearance, with the summary of each :func:`stat_columns` field over its jobs."""
    keys = cell_keys(swept_keys)
    columns = stat_columns(rows)
    groups: dict[tuple[str | None, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row["swept"].get(k) for k in keys), []).append(row)
    cells = []
    for values, jobs in groups.items():
        swept = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
        stats = {name: summarize(finite(job[name]) for job in jobs) for _, name in columns}
        cells.append(Cell(cell_label(swept, keys), swept, jobs, stats))
    return cells


def stat_headers(columns: Sequence[tuple[str, str]]) -> list[str]:
    """``best val PSNR mean``, ``best val PSNR ci95``, ``best val PSNR std``, ``best val PSNR n``, ..."""
    return [f"{header} {suffix}" for header, _ in columns for suffix in STAT_SUFFIXES]


def stat_values(cell: Cell, columns: Sequence[tuple[str, str]]) -> list[Any]:
    """The numbers under :func:`stat_headers`."""
    out: list[Any] = []
    for _, name in columns:
        s = cell.stats[name]
        out += [s.mean, s.half_width, s.std, s.n]
    return out


def cell_headers(swept_keys: Sequence[str], columns: Sequence[tuple[str, str]]) -> list[str]:
    """The human-readable cell table's headers."""
    keys = cell_keys(swept_keys)
    return [
        "cell",
        *column_headers(keys).values(),
        "seeds",
        "params",
        *(header for header, _ in columns),
        "offset diversity",
        "status",
    ]


def cell_display(cell: Cell, swept_keys: Sequence[str], columns: Sequence[tuple[str, str]]) -> list[str]:
    """A cell's row for humans: scores as ``mean ± half-width (n)``."""
    row = cell.row()
    spec = {name: (".4f" if "ssim" in name else ".2f") for _, name in columns}
    diversity = row["offset_diversity"]
    return [
        cell.label,
        *(cell.swept.get(k) or MISSING for k in cell_keys(swept_keys)),
        str(len(cell.jobs)),
        format_params(row["params"]),
        *(cell.stats[name].text(spec[name]) for _, name in columns),
        MISSING if diversity is None else f"{diversity:.3f}",
        row["status"],
    ]


def cells_markdown(
    cells: Sequence[Cell], swept_keys: Sequence[str], columns: Sequence[tuple[str, str]]
) -> str:
    return markdown_table(
        cell_headers(swept_keys, columns), (cell_display(c, swept_keys, columns) for c in cells)
    )


def write_cells_csv(
    path: Path, cells: Sequence[Cell], swept_keys: Sequence[str], columns: Sequence[tuple[str, str]]
) -> Path:
    """``report_cells.csv``: one row per cell, plain numbers."""
    keys = cell_keys(swept_keys)
    header = ["cell", *column_headers(keys).values(), "seeds", "params", *stat_headers(columns)]
    header += ["offset diversity mean", "status"]
    body = []
    for cell in cells:
        row = cell.row()
        body.append(
            [
                cell.label,
                *(cell.swept.get(k) for k in keys),
                len(cell.jobs),
                row["params"],
                *stat_values(cell, columns),
                row["offset_diversity"],
                row["status"],
            ]
        )
    return write_rows(path, header, body)


def job_stat_cells(
    rows: Sequence[dict[str, Any]], cells: Sequence[Cell], columns: Sequence[tuple[str, str]]
) -> tuple[list[str], list[list[Any]]]:
    """The columns ``report.csv`` gets for a seed axis: each job's ``cell`` and its cell's
    :func:`stat_headers` numbers, in the order of ``rows``."""
    of_job = {id(job): cell for cell in cells for job in cell.jobs}
    body = [[of_job[id(row)].label, *stat_values(of_job[id(row)], columns)] for row in rows]
    return ["cell", *stat_headers(columns)], body


def cells_rich_table(
    title: str, cells: Sequence[Cell], swept_keys: Sequence[str], columns: Sequence[tuple[str, str]]
) -> Table:
    """The cell table as a :class:`rich.table.Table`."""
    from rich.table import Table

    table = Table(title=title)
    body = [cell_display(cell, swept_keys, columns) for cell in cells]
    for i, header in enumerate(cell_headers(swept_keys, columns)):
        if i == 0:
            table.add_column(header, justify="left", overflow="fold", min_width=8)
        else:
            width = max((len(c[i]) for c in body), default=1)
            table.add_column(header, justify="left" if header == "status" else "right", min_width=width)
    for cell, cells_text in zip(cells, body, strict=True):
        style = {"done": "green", "failed": "red"}.get(cell.row()["state"] or "")
        table.add_row(*cells_text, style=style)
    return table
