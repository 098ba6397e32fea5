"""``vsrlab-report``'s app: the tables, statistics and figures of a sweep (:mod:`vsrlab.report`),
written beside it and printed."""

from __future__ import annotations

from pathlib import Path

from vsrlab.report import Report, print_report, write_report


def report(sweep_dir: str | Path, out: str | Path | None = None, metric: str = "best",
           baseline: str | None = None) -> Report:  # fmt: skip
    """Write ``report.md``, ``report.csv`` and the figures of ``sweep_dir`` (into ``out``, default the
    sweep) and print the table; returns the report."""
    result = write_report(sweep_dir, out, metric, baseline)
    print_report(result, metric)
    return result
