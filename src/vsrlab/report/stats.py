"""Seed statistics of a sweep: mean, standard deviation and 95% t interval of a cell's seeds, paired
differences between cells, and the Fisher z interval of a correlation.

Why the seed level decides.  A difference between two configurations is measured on every test clip of
every seed, but the (seed, clip) differences are not independent samples: all clips of one seed are
scored with the weights of one training run, so they share that run's noise (initialisation, data
order, where training happened to stop).  A t interval over all (seed, clip) pairs treats each clip as
a new run and is too narrow by roughly the square root of the number of clips when the run-to-run
noise dominates.  The conservative interval first averages the paired differences over the clips of
each seed and then takes the t interval over seeds, whose differences are independent; a difference is
called significant only when that interval excludes 0.  The (seed, clip) interval is reported next to
it, for reference: its width shows how much the clips alone vary.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

LEVEL = 0.95
#: the standard normal 97.5% quantile, for the Fisher z interval
Z95 = 1.959963984540054


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided ``level`` quantile of Student's t with ``n - 1`` degrees of freedom (``n >= 2``)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


@dataclass(frozen=True)
class Summary:
    """``n`` values: mean, sample standard deviation (``ddof=1``) and the half-width of the 95% t
    interval of the mean; ``std`` and ``half_width`` are None below 2 values, everything below 1."""

    n: int
    mean: float | None = None
    std: float | None = None
    half_width: float | None = None

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.half_width is None else self.mean + self.half_width

    def contains(self, value: float) -> bool | None:
        """Whether the interval contains ``value`` (None without an interval)."""
        if self.low is None or self.high is None:
            return None
        return self.low <= value <= self.high

    def text(self, spec: str = ".2f", missing: str = "—") -> str:
        """``27.50 ± 0.25 (3)``; one value has no interval: ``27.50 ± n/a (1)``."""
        if self.mean is None:
            return missing
        spread = "n/a" if self.half_width is None else format(self.half_width, spec.lstrip("+"))
        return f"{format(self.mean, spec)} ± {spread} ({self.n})"

    def interval_text(self, spec: str = "+.3f", missing: str = "—") -> str:
        """``[+0.010, +0.230]``, or ``missing`` without an interval."""
        if self.low is None or self.high is None:
            return missing
        return f"[{format(self.low, spec)}, {format(self.high, spec)}]"


def summarize(values: Iterable[float]) -> Summary:
    """Mean, standard deviation and 95% t interval of the finite ``values`` (others are left out)."""
    data = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(data)
    if n == 0:
        return Summary(0)
    mean = float(statistics.mean(data))
    if n == 1:
        return Summary(1, mean)
    std = statistics.stdev(data)
    return Summary(n, mean, std, t_quantile(n) * std / math.sqrt(n))


@dataclass(frozen=True)
class Paired:
    """A paired difference (cell minus baseline): ``seeds`` over seeds (per seed, with per-clip scores,
    the mean over the clips of the paired differences), ``pairs`` over (seed, clip) pairs (None
    without per-clip scores); ``clips`` is the number of clips paired per seed (the largest)."""

    seeds: Summary
    pairs: Summary | None = None
    clips: int | None = None

    @property
    def significant(self) -> bool | None:
        """The seed-level 95% interval excludes 0; None without an interval (fewer than 2 seeds)."""
        contains = self.seeds.contains(0.0)
        return None if contains is None else not contains

    def verdict(self) -> str:
        if self.seeds.n == 0:
            return "no common seed"
        if self.significant is None:
            return "no interval (1 seed)"
        return "significant" if self.significant else "not significant"


def paired_over_seeds(cell: Mapping[Hashable, float], base: Mapping[Hashable, float]) -> Paired:
    """``cell[seed] - base[seed]`` over the seeds both have."""
    return Paired(summarize(cell[s] - base[s] for s in cell if s in base))


def paired_over_clips(
    cell: Mapping[Hashable, Mapping[str, float]], base: Mapping[Hashable, Mapping[str, float]]
) -> Paired:
    """``cell[seed][clip] - base[seed][clip]`` over the (seed, clip) pairs both have: the seed-level
    summary over the per-seed means of the clip differences, and the (seed, clip)-level summary."""
    per_seed, pairs, clips = [], [], 0
    for seed, scores in cell.items():
        other = base.get(seed)
        if other is None:
            continue
        diffs = [scores[c] - other[c] for c in scores if c in other]
        if diffs:
            per_seed.append(math.fsum(diffs) / len(diffs))
            pairs += diffs
            clips = max(clips, len(diffs))
    return Paired(summarize(per_seed), summarize(pairs), clips)


def fisher_interval(r: float, n: int) -> tuple[float, float] | None:
    """The 95% interval of a Pearson ``r`` of ``n`` points by Fisher's z transform,
    ``tanh(atanh(r) ± 1.96 / sqrt(n - 3))``; None for ``n <= 3`` (undefined)."""
    if n <= 3:
        return None
    if abs(r) >= 1.0:
        return (r, r)
    z, se = math.atanh(r), 1.0 / math.sqrt(n - 3)
    return (math.tanh(z - Z95 * se), math.tanh(z + Z95 * se))
