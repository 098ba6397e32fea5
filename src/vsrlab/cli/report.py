"""``vsrlab-report <sweep dir>``: the results table, G x N heatmaps and offset diversity vs PSNR
correlation of a Hydra multirun sweep, with seed statistics and paired differences to a baseline
cell when the sweep has a ``seed`` axis (:mod:`vsrlab.report`).

    vsrlab-report logs/train/multiruns/offset_diversity
    vsrlab-report logs/train/multiruns/offset_diversity --out reports/od --metric final
    vsrlab-report logs/train/multiruns/alignment_seeds --baseline experiment=align_none
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vsrlab.apps.report import report
from vsrlab.report import METRIC_FIELDS
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
        help="validation PSNR used by the heatmaps, the correlation and the differences (default: best)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="the baseline cell of the paired differences (swept keys, full or short names; the other "
        "swept keys are matched cell by cell); default: G=1,N=1 for a G x N sweep with a seed axis, "
        "else none; 'none' turns them off",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point: write ``report.md``, ``report.csv`` and the figures, print the table.
    A sweep that cannot be read, or a ``--baseline`` that names no swept key, exits with status 1 and
    the reason."""
    args = build_parser().parse_args(argv)
    try:
        report(args.sweep_dir, args.out, args.metric, args.baseline)
    except (ManifestError, ValueError) as err:
        raise SystemExit(f"vsrlab-report: error: {err}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
