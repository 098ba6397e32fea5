"""PSNR per motion bin of a sweep's jobs (``motion_bins`` of their ``metrics.json``, written by
evaluation with ``model.evaluation.motion_bins``; :mod:`vsrlab.metrics.motion`): where alignment
helps, as a function of how fast pixels move (Shi et al., "Rethinking Alignment in Video
Super-Resolution Transformers", NeurIPS 2022).

Writes ``motion_psnr.png`` (PSNR vs motion bin, one line per job, labelled by its swept values, and the
bicubic baseline) and, when a swept key has the value ``none`` (or ``<something>_none``, e.g.
``experiment=align_none``), ``motion_gain.png``: each other job's PSNR gain over the ``none`` job that
shares its other swept values; both as Markdown tables in the report.

With a seed axis (:mod:`vsrlab.report.cells`) the figures show each cell's mean over seeds with 95% t
error bars, the gains paired by seed, and the report adds both as ``mean ± half-width (n)`` tables
after the per-job ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsrlab.report.cells import SEED_KEY, cell_keys, group_cells
from vsrlab.report.jobs import MISSING, finite
from vsrlab.report.stats import Summary, summarize
from vsrlab.report.table import column_headers, markdown_table
from vsrlab.run import METRICS_FILE, read_json_object
from vsrlab.utils.figures import new_figure

MOTION_PSNR = "motion_psnr.png"
MOTION_GAIN = "motion_gain.png"


def job_motion_bins(job_dir: str | Path) -> dict[str, Any] | None:
    """The ``motion_bins`` of a job's ``metrics.json``: a training run's test results (``test``) or an
    evaluation's (top level); None when absent or malformed."""
    metrics = read_json_object(Path(job_dir) / METRICS_FILE) or {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    bins = test.get("motion_bins", metrics.get("motion_bins"))
    if not isinstance(bins, dict) or not isinstance(bins.get("overall"), list) or not bins.get("edges"):
        return None
    return bins


def bin_labels(edges: Sequence[float]) -> list[str]:
    """``[0, 1, inf]`` -> ``['0-1', '>=1']``: the bins ``[lo, hi)`` in LR pixels per frame."""
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        lo_s, hi_s = f"{lo:g}", f"{hi:g}"
        labels.append(f">={lo_s}" if math.isinf(hi) else f"{lo_s}-{hi_s}")
    return labels


def is_none_value(value: str | None) -> bool:
    """A swept value meaning "no alignment": ``none``, or ending in ``_none`` (``align_none``)."""
    return value is not None and (value.lower() == "none" or value.lower().endswith("_none"))


def job_label(swept: dict[str, str], keys: Sequence[str]) -> str:
    names = column_headers(list(keys))
    return ", ".join(f"{names[k]}={swept.get(k, MISSING)}" for k in keys) or "job"


def baseline_pairs(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(job index, baseline index, swept key)``: every job whose swept key ``k`` is not a none value,
    paired with the job where ``k`` is one (:func:`is_none_value`) and every other swept value is
    the same."""
    pairs = []
    for key in keys:
        others = [k for k in keys if k != key]
        for i, row in enumerate(rows):
            if is_none_value(row["swept"].get(key)):
                continue
            for j, base in enumerate(rows):
                same = all(base["swept"].get(k) == row["swept"].get(k) for k in others)
                if same and is_none_value(base["swept"].get(key)):
                    pairs.append((i, j, key))
                    break
    return pairs


def _values(bins: dict[str, Any], field: str) -> np.ndarray:
    return np.array(
        [finite(b.get(field)) if finite(b.get(field)) is not None else np.nan for b in bins["overall"]]
    )


def _fmt(value: float, spec: str) -> str:
    return format(value, spec) if np.isfinite(value) else MISSING


def _fmt_summary(summary: Summary, spec: str) -> str:
    return summary.text(spec, MISSING)


def plot_lines(
    lines: Sequence[tuple[str, np.ndarray, str]],
    labels: Sequence[str],
    path: Path,
    ylabel: str,
    title: str,
    errors: Sequence[np.ndarray | None] | None = None,
) -> Path:
    """One line per ``(label, values per bin, style)`` over the bins, with error bars of
    ``errors[i]`` (half-widths per bin, NaN: none) when given; NaN values leave gaps."""
    fig = new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for k, (label, values, style) in enumerate(lines):
        err = None if errors is None else errors[k]
        if err is None:
            ax.plot(x, values, style, marker="o", label=label)
        else:
            yerr = np.where(np.isfinite(err), err, 0.0)
            ax.errorbar(x, values, yerr=yerr, fmt=style, marker="o", capsize=3, label=label)
    ax.set_xticks(x, list(labels))
    ax.set_xlabel("motion (LR pixels per frame)")
    ax.set_ylabel(ylabel)
    ax.yaxis.get_major_formatter().set_useOffset(False)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    return path


def per_bin(values: Sequence[np.ndarray]) -> list[Summary]:
    """The :class:`Summary` over seeds of each bin of ``values`` (one array per seed)."""
    stacked = np.array(values, dtype=float).reshape(len(values), -1)
    return [summarize(stacked[:, b]) for b in range(stacked.shape[1])]


def _means(summaries: Sequence[Summary]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([np.nan if s.mean is None else s.mean for s in summaries])
    half = np.array([np.nan if s.half_width is None else s.half_width for s in summaries])
    return mean, half


def seed_section(
    found: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    keys: Sequence[str],
    labels: Sequence[str],
    bicubic: np.ndarray,
    out_dir: Path,
) -> tuple[list[str], list[Path]]:
    """Mean ± 95% half-width over seeds per cell and bin, the seed-paired gains over the ``none``
    cells, their tables and figures with error bars."""
    bins_of = {id(row): bins for row, bins in found}
    cells = group_cells([row for row, _ in found], keys)
    names = cell_keys(keys)
    by_seed = [
        {job["swept"].get(SEED_KEY): _values(bins_of[id(job)], "psnr") for job in c.jobs} for c in cells
    ]
    psnr = [
        (job_label(c.swept, names) if names else "all", per_bin(list(v.values())))
        for c, v in zip(cells, by_seed, strict=True)
    ]
    lines = ["### PSNR, mean ± 95% CI over seeds (dB)", ""]
    lines += [
        markdown_table(
            ["cell", *labels], [[label, *(_fmt_summary(s, ".2f") for s in sums)] for label, sums in psnr]
        ),
        "",
    ]
    curves = [(label, *_means(sums)) for label, sums in psnr]
    written = [
        plot_lines(
            [*((label, mean, "-") for label, mean, _ in curves), ("bicubic", bicubic, "k--")],
            labels,
            out_dir / MOTION_PSNR,
            "PSNR (dB)",
            "PSNR per motion bin (mean ± 95% CI over seeds)",
            [*(half for _, _, half in curves), None],
        )
    ]
    gains = []
    for i, j, key in baseline_pairs([c.row() for c in cells], names):
        seeds = [s for s in by_seed[i] if s in by_seed[j]]
        diffs = per_bin([by_seed[i][s] - by_seed[j][s] for s in seeds]) if seeds else []
        if diffs:
            gains.append((f"{psnr[i][0]} vs {cells[j].swept[key]}", diffs))
    if gains:
        lines += ["### PSNR gain over the cell without alignment, paired by seed (dB)", ""]
        body = [[label, *(_fmt_summary(s, "+.2f") for s in sums)] for label, sums in gains]
        lines += [markdown_table(["cell", *labels], body), ""]
        curves = [(label, *_means(sums)) for label, sums in gains]
        written.append(
            plot_lines(
                [(label, mean, "-") for label, mean, _ in curves],
                labels,
                out_dir / MOTION_GAIN,
                "PSNR gain (dB)",
                "PSNR gain over no alignment per motion bin (mean ± 95% CI over seeds)",
                [half for _, _, half in curves],
            )
        )
    return lines, written


def motion_section(
    manifest: dict[str, Any], rows: Sequence[dict[str, Any]], out_dir: Path
) -> tuple[list[str], list[Path]]:
    """The Markdown lines of the motion-bin section and the figures written (none when no job has
    ``motion_bins``)."""
    keys = list(manifest["swept_keys"])
    found = [(row, job_motion_bins(row["dir"])) for row in rows]
    found = [(row, bins) for row, bins in found if bins is not None]
    if not found:
        return [], []
    edges = [float(e) for e in found[0][1]["edges"]]
    lines = ["## PSNR per motion bin (test clips)", ""]
    skipped = [row["job"] for row, bins in found if [float(e) for e in bins["edges"]] != edges]
    found = [(row, bins) for row, bins in found if [float(e) for e in bins["edges"]] == edges]
    labels = bin_labels(edges)
    first = found[0][1]
    lines += [
        f"Motion: {first.get('definition', 'see vsrlab.metrics.motion')}; flow: {first.get('flow', '?')}.",
        "",
    ]
    if skipped:
        lines += [f"Left out (other bin edges than {edges}): {', '.join(skipped)}.", ""]
    psnr = [(job_label(row["swept"], keys), _values(bins, "psnr")) for row, bins in found]
    bicubic, pixels = _values(first, "psnr_bicubic"), _values(first, "pixels")
    body = [[label, *(_fmt(v, ".2f") for v in values)] for label, values in psnr]
    body.append(["bicubic", *(_fmt(v, ".2f") for v in bicubic)])
    body.append(["pixels", *(_fmt(v, ".0f") for v in pixels)])
    lines += ["### PSNR (dB)", "", markdown_table(["job", *labels], body), ""]
    pairs = baseline_pairs([row for row, _ in found], keys)
    gains = [(f"{psnr[i][0]} vs {found[j][0]['swept'][key]}", psnr[i][1] - psnr[j][1]) for i, j, key in pairs]
    if gains:
        lines += ["### PSNR gain over the job without alignment (dB)", ""]
        lines += [
            markdown_table(["job", *labels], [[g, *(_fmt(v, "+.2f") for v in d)] for g, d in gains]),
            "",
        ]
    if SEED_KEY in keys:
        seed_lines, written = seed_section(found, keys, labels, bicubic, out_dir)
        lines += seed_lines + ["Figures: " + ", ".join(f"`{p.name}`" for p in written) + ".", ""]
        return lines, written
    written = [
        plot_lines(
            [*((label, values, "-") for label, values in psnr), ("bicubic", bicubic, "k--")],
            labels,
            out_dir / MOTION_PSNR,
            "PSNR (dB)",
            "PSNR per motion bin",
        )
    ]
    if gains:
        written.append(
            plot_lines(
                [(label, values, "-") for label, values in gains],
                labels,
                out_dir / MOTION_GAIN,
                "PSNR gain (dB)",
                "PSNR gain over no alignment per motion bin",
            )
        )
    lines += ["Figures: " + ", ".join(f"`{p.name}`" for p in written) + ".", ""]
    return lines, written
