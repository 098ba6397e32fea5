"""Paired differences of a sweep's cells against a baseline cell (``vsrlab-report baseline={key:value}``).

Every other cell is compared with its baseline: the cell that has the ``--baseline`` values on their
keys and the cell's own values on the other swept keys (so ``'baseline={experiment:align_none}'``
compares each alignment with the no-alignment cell of the same other settings).  Differences are
paired by seed (the same seed in both cells) and, for the test PSNR with per-clip scores, by test clip.

The verdict uses the seed level only: per seed, the mean over clips of the paired differences, then
the 95% t interval over seeds; "not significant" when it contains 0.  The (seed, clip) interval is
shown too, but it does not decide: the clips of one seed are scored with one training run's weights
and share its noise, so they are not independent samples of the difference
(:mod:`vsrlab.report.stats`).  Without a ``--baseline``, a G x N sweep with a seed axis uses its
``G = N = 1`` cell, the baseline of the gain heatmap (:mod:`vsrlab.report.grid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsrlab.report.cells import Cell, cell_keys
from vsrlab.report.grid import gn_keys
from vsrlab.report.jobs import MISSING, finite
from vsrlab.report.stats import Paired, paired_over_clips, paired_over_seeds
from vsrlab.report.table import column_headers, markdown_table, write_rows

DIFF_CSV = "report_differences.csv"
DIFF_HEADERS = [
    "cell",
    "baseline",
    "metric",
    "seeds",
    "clips",
    "mean",
    "std",
    "ci95",
    "ci95 low",
    "ci95 high",
    "pairs",
    "pairs ci95",
    "pairs ci95 low",
    "pairs ci95 high",
    "significant",
]


def parse_baseline(text: str) -> dict[str, str]:
    """``key=value[,key=value]`` -> ``{key: value}`` (keys as given: full or short names)."""
    spec = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--baseline expects key=value[,key=value], got {text!r}")
        spec[key.strip()] = value.strip()
    return spec


def resolve_baseline(spec: dict[str, str], swept_keys: Sequence[str]) -> dict[str, str]:
    """``spec`` with full swept keys (a short name as in the table's headers is accepted); raises
    ``ValueError`` for a key that is not swept, or the seed."""
    keys = cell_keys(swept_keys)
    names = {short: key for key, short in column_headers(keys).items()}
    out = {}
    for key, value in spec.items():
        full = key if key in keys else names.get(key)
        if full is None:
            raise ValueError(
                f"--baseline: {key!r} is not a swept key other than the seed "
                f"(swept: {', '.join(keys) or 'only the seed'})"
            )
        out[full] = value
    return out


def same_value(a: str | None, b: str | None) -> bool:
    """Equal swept values: the same string, or the same number (``1`` and ``1.0``)."""
    return a == b or (finite(a) is not None and finite(a) == finite(b))


def matches(cell: Cell, spec: dict[str, str]) -> bool:
    return all(same_value(cell.swept.get(k), v) for k, v in spec.items())


def default_baseline(manifest: dict[str, Any], cells: Sequence[Cell]) -> dict[str, str] | None:
    """``G = N = 1`` for a G x N sweep that has such a cell, else None."""
    keys = gn_keys(manifest)
    if keys is None:
        return None
    spec = dict.fromkeys(keys, "1")
    return spec if any(matches(cell, spec) for cell in cells) else None


def baseline_of(cell: Cell, spec: dict[str, str], cells: Sequence[Cell]) -> Cell | None:
    """The cell with ``spec``'s values on its keys and ``cell``'s on the others."""
    target = {**cell.swept, **spec}
    keys = set(target) | {k for c in cells for k in c.swept}
    for other in cells:
        if all(same_value(other.swept.get(k), target.get(k)) for k in keys):
            return other
    return None


@dataclass
class Difference:
    """``cell`` minus ``baseline`` in ``metric`` (a table header), paired by seed and, when
    ``by_clip``, by test clip."""

    cell: str
    baseline: str
    metric: str
    paired: Paired
    by_clip: bool = False

    def csv_cells(self) -> list[Any]:
        s, p = self.paired.seeds, self.paired.pairs if self.by_clip else None
        significant = self.paired.significant
        return [
            self.cell,
            self.baseline,
            self.metric,
            s.n,
            self.paired.clips if self.by_clip else None,
            s.mean,
            s.std,
            s.half_width,
            s.low,
            s.high,
            p.n if p else None,
            p.half_width if p else None,
            p.low if p else None,
            p.high if p else None,
            None if significant is None else str(significant).lower(),
        ]

    def display(self) -> list[str]:
        s, p = self.paired.seeds, self.paired.pairs if self.by_clip else None
        return [
            self.cell,
            self.baseline,
            self.metric,
            str(s.n),
            str(self.paired.clips) if self.by_clip else MISSING,
            MISSING if s.mean is None else f"{s.mean:+.3f}",
            s.interval_text(),
            p.interval_text() if p else MISSING,
            self.paired.verdict(),
        ]


def cell_difference(cell: Cell, base: Cell, header: str, name: str) -> Difference | None:
    """The paired difference of one metric; the test PSNR pairs clips when both cells have per-clip
    scores for every seed they share.  None when neither cell has the metric."""
    if name == "test_psnr":
        clips, base_clips = cell.clip_scores(), base.clip_scores()
        shared = set(cell.scores(name)) & set(base.scores(name))
        if clips and base_clips and shared <= (set(clips) & set(base_clips)):
            return Difference(cell.label, base.label, header, paired_over_clips(clips, base_clips), True)
    values, base_values = cell.scores(name), base.scores(name)
    if not values and not base_values:
        return None
    return Difference(cell.label, base.label, header, paired_over_seeds(values, base_values))


def differences(
    cells: Sequence[Cell], spec: dict[str, str], metrics: Sequence[tuple[str, str]]
) -> tuple[list[Difference], list[str]]:
    """The differences of every non-baseline cell in each ``(header, field)`` of ``metrics``, and the
    labels of cells without a baseline cell."""
    out, orphans = [], []
    for cell in cells:
        if matches(cell, spec):
            continue
        base = baseline_of(cell, spec, cells)
        if base is None:
            orphans.append(cell.label)
            continue
        for header, name in metrics:
            diff = cell_difference(cell, base, header, name)
            if diff is not None:
                out.append(diff)
    return out, orphans


def differences_section(
    cells: Sequence[Cell],
    spec: dict[str, str],
    metrics: Sequence[tuple[str, str]],
    out_dir: Path,
    automatic: bool = False,
) -> tuple[list[str], list[Difference], Path | None]:
    """The Markdown lines of the difference table, the differences and ``report_differences.csv``."""
    diffs, orphans = differences(cells, spec, metrics)
    names = column_headers(list(spec))
    given = ",".join(f"{names[k]}={v}" for k, v in spec.items())
    how = "the G = N = 1 cell, as the gain heatmap" if automatic else f"`--baseline {given}`"
    by_clip = " and test clip" if any(d.by_clip for d in diffs) else ""
    lines = [
        f"## Differences to the baseline (paired by seed{by_clip})",
        "",
        f"Baseline: {given} ({how}); each other cell minus the baseline cell with its other swept "
        "values, paired by seed and, for the test PSNR with per-clip scores, by clip. The 95% t interval "
        "over seeds decides (per seed: the mean over clips of the paired differences); the (seed, clip) "
        "interval is narrower but does not decide, because the clips of one seed share that training "
        "run's noise.",
        "",
    ]
    if orphans:
        lines += [f"No baseline cell for: {', '.join(orphans)}.", ""]
    if not diffs:
        return lines + ["No cell to compare with a baseline.", ""], diffs, None
    header = ["cell", "baseline", "metric", "seeds", "clips", "difference (dB)", "95% CI, seeds"]
    header += ["95% CI, (seed, clip)", "verdict"]
    lines += [markdown_table(header, (d.display() for d in diffs), ("baseline", "metric", "verdict")), ""]
    path = write_rows(out_dir / DIFF_CSV, DIFF_HEADERS, (d.csv_cells() for d in diffs))
    return lines + [f"Differences: `{path.name}`.", ""], diffs, path
