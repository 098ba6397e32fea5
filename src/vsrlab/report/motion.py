"""PSNR per motion bin of a sweep's jobs (``motion_bins`` of their ``metrics.json``, written by
evaluation with ``model.evaluation.motion_bins``; :mod:`vsrlab.metrics.motion`): where alignment
helps, as a function of how fast pixels move (Shi et al., "Rethinking Alignment in Video
Super-Resolution Transformers", NeurIPS 2022).

Writes ``motion_psnr.png`` (PSNR vs motion bin, one line per job, labelled by its swept values, and the
bicubic baseline) and, when a swept key has the value ``none`` (or ``<something>_none``, e.g.
``experiment=align_none``), ``motion_gain.png``: each other job's PSNR gain over the ``none`` job that
shares its other swept values; both as Markdown tables in the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsrlab.report.grid import new_figure
from vsrlab.report.jobs import MISSING, finite
from vsrlab.report.table import column_headers, markdown_table
from vsrlab.run import METRICS_FILE, read_json_object

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


def plot_lines(
    lines: Sequence[tuple[str, np.ndarray, str]], labels: Sequence[str], path: Path, ylabel: str, title: str
) -> Path:
    """One line per ``(label, values per bin, style)`` over the bins; NaN values leave gaps."""
    fig = new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for label, values, style in lines:
        ax.plot(x, values, style, marker="o", label=label)
    ax.set_xticks(x, list(labels))
    ax.set_xlabel("motion (LR pixels per frame)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    return path


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
    written = [
        plot_lines(
            [*((label, values, "-") for label, values in psnr), ("bicubic", bicubic, "k--")],
            labels,
            out_dir / MOTION_PSNR,
            "PSNR (dB)",
            "PSNR per motion bin",
        )
    ]
    pairs = baseline_pairs([row for row, _ in found], keys)
    if pairs:
        gains = [
            (f"{psnr[i][0]} vs {found[j][0]['swept'][key]}", psnr[i][1] - psnr[j][1]) for i, j, key in pairs
        ]
        lines += ["### PSNR gain over the job without alignment (dB)", ""]
        lines += [
            markdown_table(["job", *labels], [[g, *(_fmt(v, "+.2f") for v in d)] for g, d in gains]),
            "",
        ]
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
