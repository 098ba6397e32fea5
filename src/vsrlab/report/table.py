"""The sweep table: CSV (plain numbers), Markdown and the console (rich)."""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable, Sequence
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


#: the test column, after ``final val SSIM`` when a job has test scores
TEST_COLUMN = ("test PSNR", "test_psnr")

#: display format of each numeric field
FORMATS = {
    "best_psnr": ".2f",
    "best_ssim": ".4f",
    "best_step": "d",
    "final_psnr": ".2f",
    "final_ssim": ".4f",
    "test_psnr": ".2f",
    "offset_diversity": ".3f",
    "steps": "d",
    "preemptions": "d",
}

Columns = Sequence[tuple[str, str]]

#: the header of each swept key: the short name job directories and W&B tags use too
column_headers = short_keys


def job_columns(rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """:data:`FIXED_COLUMNS`, with :data:`TEST_COLUMN` when a row has a test PSNR."""
    if not any(row.get("test_psnr") is not None for row in rows):
        return FIXED_COLUMNS
    at = [field for _, field in FIXED_COLUMNS].index("final_ssim") + 1
    return (*FIXED_COLUMNS[:at], TEST_COLUMN, *FIXED_COLUMNS[at:])


def table_columns(swept_keys: Sequence[str], columns: Columns = FIXED_COLUMNS) -> list[str]:
    """All column headers, in order."""
    return ["job", *column_headers(swept_keys).values(), *(header for header, _ in columns)]


def _raw_cells(row: dict[str, Any], swept_keys: Sequence[str], columns: Columns) -> list[Any]:
    return [
        row["job"],
        *(row["swept"].get(key) for key in swept_keys),
        *(row[field] for _, field in columns),
    ]


def csv_value(value: Any) -> str:
    """A CSV cell: floats in full precision, an empty string for a missing value."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def csv_cells(row: dict[str, Any], swept_keys: Sequence[str], columns: Columns = FIXED_COLUMNS) -> list[str]:
    """The CSV cells of a row: plain numbers (full precision), empty strings for missing values."""
    return [csv_value(value) for value in _raw_cells(row, swept_keys, columns)]


def display_value(field: str, value: Any) -> str:
    """A field's value for humans: PSNR in dB with 2 decimals, SSIM with 4, parameters as ``1.23M``,
    ``—`` for a missing value."""
    if field == "params":
        return format_params(value)
    if field not in FORMATS:
        return MISSING if value is None else str(value)
    return MISSING if value is None else format(value, FORMATS[field])


def display_cells(
    row: dict[str, Any], swept_keys: Sequence[str], columns: Columns = FIXED_COLUMNS
) -> list[str]:
    """The human-readable cells of a row (Markdown and console), :func:`display_value`."""
    swept = [row["swept"].get(key) or MISSING for key in swept_keys]
    return [row["job"], *swept, *(display_value(field, row[field]) for _, field in columns)]


def write_csv(
    path: Path,
    rows: Sequence[dict[str, Any]],
    swept_keys: Sequence[str],
    columns: Columns = FIXED_COLUMNS,
    extra: tuple[Sequence[str], Sequence[Sequence[Any]]] | None = None,
) -> Path:
    """Write the table as CSV (header :func:`table_columns`), then the ``extra`` columns
    (``(headers, cells of each row)``) when given."""
    header, extra_cells = list(extra[0]) if extra else [], list(extra[1]) if extra else [[] for _ in rows]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table_columns(swept_keys, columns) + header)
        writer.writerows(
            csv_cells(row, swept_keys, columns) + [csv_value(v) for v in more]
            for row, more in zip(rows, extra_cells, strict=True)
        )
    return path


def write_rows(path: Path, header: Sequence[str], body: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV file of ``header`` and ``body`` (:func:`csv_value` cells)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([csv_value(v) for v in cells] for cells in body)
    return path


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(
    header: Sequence[str], body: Iterable[Sequence[str]], left: Collection[str] = ("status",)
) -> str:
    """A Markdown table (the first column and those named in ``left`` left-aligned, the others
    right-aligned)."""
    lines = [
        "| " + " | ".join(md_escape(str(h)) for h in header) + " |",
        "|" + "|".join(":---" if i == 0 or h in left else "---:" for i, h in enumerate(header)) + "|",
    ]
    lines += ["| " + " | ".join(md_escape(str(c)) for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def rich_table(
    title: str, rows: Sequence[dict[str, Any]], swept_keys: Sequence[str], columns: Columns = FIXED_COLUMNS
) -> Table:
    """The table as a :class:`rich.table.Table`."""
    from rich.table import Table

    styles = {"done": "green", "failed": "red", "preempted": "yellow", "running": "cyan"}
    table = Table(title=title)
    cells = [display_cells(row, swept_keys, columns) for row in rows]
    for i, header in enumerate(table_columns(swept_keys, columns)):
        if i == 0:  # long job names fold in narrow consoles; headers wrap, but values are never cut
            table.add_column(header, justify="left", overflow="fold", min_width=8)
        else:
            width = max((len(c[i]) for c in cells), default=1)
            table.add_column(header, justify="left" if header == "status" else "right", min_width=width)
    for row, row_cells in zip(rows, cells, strict=True):
        table.add_row(*row_cells, style=styles.get(row.get("state", row["status"])))
    return table
