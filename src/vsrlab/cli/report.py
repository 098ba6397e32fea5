"""``vsrlab-report <sweep dir>``: the results table, G x N heatmaps and offset diversity vs PSNR
correlation of a Hydra multirun sweep (:mod:`vsrlab.report`).

    vsrlab-report logs/train/multiruns/offset_diversity
    vsrlab-report logs/train/multiruns/offset_diversity --out reports/od --metric final
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vsrlab.report import METRIC_FIELDS, print_report, write_report
from vsrlab.run import ManifestError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsrlab-report",
        description="Results table (report.md, report.csv), G x N heatmaps and offset diversity vs PSNR "
        "correlation of a Hydra multirun sweep.",
    )
    parser.add_argument(
        "sweep_dir", type=Path, help="the multirun directory (with sweep.json or job subdirectories)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: the sweep directory)"
    )
    parser.add_argument(
        "--metric",
        choices=sorted(METRIC_FIELDS),
        default="best",
        help="validation PSNR used by the heatmaps and the correlation (default: best)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point: write ``report.md``, ``report.csv`` and the figures, print the table.
    A sweep that cannot be read exits with status 1 and the reason."""
    args = build_parser().parse_args(argv)
    try:
        report = write_report(args.sweep_dir, args.out, args.metric)
    except ManifestError as err:
        raise SystemExit(f"vsrlab-report: error: {err}") from None
    print_report(report, args.metric)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
