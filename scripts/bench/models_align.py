"""The alignment-op job of ``python -m scripts.bench.models``: vsrlab's decomposed ``deform_conv2d``
(modulated, G=8, N=9, 64 channels), forward + backward, against torchvision's kernel (when
importable) and a dense 3x3 convolution (``run_case`` of :mod:`scripts.bench.align`), and its table."""

from __future__ import annotations

import argparse
from typing import Any

from .align import run_case, torchvision_available
from .common import markdown_table, ratio, sig
from .models_spec import ALIGN_IMPLS, ALIGN_LABELS, ALIGN_SHAPE, tier


def align_case(job: dict[str, Any]) -> dict[str, Any]:
    """``run_case`` of one implementation at G=8, N=9, 64 channels (it resets the peak resident set
    before the measured call: that matters with ``--in-process`` only)."""
    return run_case(
        job["impl"],
        8,
        9,
        job["device"],
        job["repeats"],
        job["measure"],
        job.get("malloc_cache", True),
        channels=64,
        size=job["size"],
        batch=job["batch"],
    )


def render_align(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    batch, size = ALIGN_SHAPE[tier(args.device, args.quick)]
    lines = [
        "### Alignment op",
        "",
        f"Forward + backward of a modulated deformable convolution, G=8 offset groups x N=9 offsets, 64 "
        f"channels, {size}x{size}, batch {batch} (`run_case` of scripts/bench/align.py: one process for "
        "the memory, one for the median time), against a dense 3x3 `conv2d` of the same shape"
        + ("" if torchvision_available() else "; torchvision is not importable here: not measured")
        + ".",
        "",
    ]
    ms = {}
    for impl in ALIGN_IMPLS:
        mine = {r["measure"]: r for r in rows if r["impl"] == impl}
        if mine:
            ms[impl] = sig(mine["time"]["ms"]) if "ms" in mine.get("time", {}) else None
    table = []
    for impl in ALIGN_IMPLS:
        mine = {r["measure"]: r for r in rows if r["impl"] == impl}
        if not mine:
            continue
        err = next((r["error"] for r in mine.values() if "error" in r), None)
        if err:
            table.append([ALIGN_LABELS[impl], err, "", ""])
            continue
        rel = ratio(ms[impl], ms["deform_conv2d"]) if ms.get("deform_conv2d") else ""
        table.append([ALIGN_LABELS[impl], ms[impl], rel, f"{mine['memory']['peak_mb']:.0f}"])
    header = ["implementation", "fwd+bwd ms", "vs vsrlab deform_conv2d", "peak MB"]
    return lines + markdown_table(header, table, "lrrr")
