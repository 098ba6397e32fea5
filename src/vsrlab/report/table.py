"""The sweep table: CSV (plain numbers), Markdown and the console (rich)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsrlab.report.jobs import MISSING, format_params
from vsrlab.run import short_keys

if TYPE_CHECKING:
    from rich.table import Table

#: Fixed columns of the table: (header, row field).  The swept-key columns go after ``job``.
FIXED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("params", "params"),
    ("best val PSNR", "best_psnr"),
    ("best val SSIM", "best_ssim"),
    ("best step", "best_step"),
    ("final val PSNR", "final_psnr"),
    ("final val SSIM", "final_ssim"),
    ("offset diversity", "offset_diversity"),
    ("steps", "steps"),
    ("pre-emptions", "preemptions"),
    ("status", "status"),
)


#: the header of each swept key: the short name job directories and W&B tags use too
column_headers = short_keys


def table_columns(swept_keys: Sequence[str]) -> list[str]:
    """All column headers, in order."""
    return ["job", *column_headers(swept_keys).values(), *(header for header, _ in FIXED_COLUMNS)]


def _raw_cells(row: dict[str, Any], swept_keys: Sequence[str]) -> list[Any]:
    return [
        row["job"],
        *(row["swept"].get(key) for key in swept_keys),
        *(row[field] for _, field in FIXED_COLUMNS),
    ]


def csv_cells(row: dict[str, Any], swept_keys: Sequence[str]) -> list[str]:
    """The CSV cells of a row: plain numbers (full precision), empty strings for missing values."""
    return [
        "" if value is None else repr(value) if isinstance(value, float) else str(value)
        for value in _raw_cells(row, swept_keys)
    ]


def display_cells(row: dict[str, Any], swept_keys: Sequence[str]) -> list[str]:
    """The human-readable cells of a row (Markdown and console): PSNR in dB with 2 decimals, SSIM with
    4, parameters as ``1.23M``, ``—`` for missing values."""

    def fmt(value: Any, spec: str) -> str:
        return MISSING if value is None else format(value, spec)

    swept = [row["swept"].get(key) or MISSING for key in swept_keys]
    return [
        row["job"],
        *swept,
        format_params(row["params"]),
        fmt(row["best_psnr"], ".2f"),
        fmt(row["best_ssim"], ".4f"),
        fmt(row["best_step"], "d"),
        fmt(row["final_psnr"], ".2f"),
        fmt(row["final_ssim"], ".4f"),
        fmt(row["offset_diversity"], ".3f"),
        fmt(row["steps"], "d"),
        fmt(row["preemptions"], "d"),
        row["status"],
    ]


def write_csv(path: Path, rows: Sequence[dict[str, Any]], swept_keys: Sequence[str]) -> Path:
    """Write the table as CSV (header :func:`table_columns`)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table_columns(swept_keys))
        writer.writerows(csv_cells(row, swept_keys) for row in rows)
    return path


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """A Markdown table (first and ``status`` columns left-aligned, the others right-aligned)."""
    lines = [
        "| " + " | ".join(md_escape(str(h)) for h in header) + " |",
        "|" + "|".join(":---" if i == 0 or h == "status" else "---:" for i, h in enumerate(header)) + "|",
    ]
    lines += ["| " + " | ".join(md_escape(str(c)) for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def rich_table(title: str, rows: Sequence[dict[str, Any]], swept_keys: Sequence[str]) -> Table:
    """The table as a :class:`rich.table.Table`."""
    from rich.table import Table

    styles = {"done": "green", "failed": "red", "preempted": "yellow", "running": "cyan"}
    table = Table(title=title)
    cells = [display_cells(row, swept_keys) for row in rows]
    for i, header in enumerate(table_columns(swept_keys)):
        if i == 0:  # long job names fold in narrow consoles; headers wrap, but values are never cut
            table.add_column(header, justify="left", overflow="fold", min_width=8)
        else:
            width = max((len(c[i]) for c in cells), default=1)
            table.add_column(header, justify="left" if header == "status" else "right", min_width=width)
    for row, row_cells in zip(rows, cells, strict=True):
        table.add_row(*row_cells, style=styles.get(row["status"]))
    return table
