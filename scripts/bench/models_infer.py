"""The inference job of ``python -m scripts.bench.models``: frames/s and peak memory of vsrlab-infer's
streaming path (:func:`vsrlab.inference.stream.super_resolve_stream`) against the clip length, and of
whole-clip inference (``VSRModule.predict_clip``), and its table."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator
from typing import Any

import torch

from .common import markdown_table, measured, ratio, sig, timed
from .models_spec import (
    ARCHS,
    INFER,
    INFER_ARCHS,
    INFER_WARMUP_FRAMES,
    arch_config,
    peak_cell,
    process_setup,
    tier,
)


def synthetic_frames(length: int, height: int, width: int) -> Iterator[Any]:
    """A synthetic LR video, ``(h, w, 3)`` uint8 frames made one at a time (a smooth pattern moving
    one pixel per frame, plus noise)."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for t in range(length):
        base = 127 + 60 * np.sin((xx + t) / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.ones(3)
        noise = rng.integers(-20, 21, (height, width, 3))
        yield np.clip(base + noise, 0, 255).astype(np.uint8)


def infer_case(job: dict[str, Any]) -> dict[str, Any]:
    """Frames/s and peak memory of vsrlab-infer's stream, or of whole-clip inference, on one clip."""
    import numpy as np

    from vsrlab.inference.stream import default_overlap, super_resolve_stream
    from vsrlab.models import VSRModule
    from vsrlab.utils.images import frames_to_tensor, to_uint8_hwc

    dev = process_setup(job)
    model = VSRModule(arch=arch_config(job["arch"], job.get("arch_changes"))).eval().to(dev)
    net, padding = model.evaluation_net(), model.eval_cfg["padding"]
    overlap = default_overlap(net, padding, 5)  # vsrlab-infer's default (recurrent_overlap=5)
    per_forward = int(model.eval_cfg["windows_per_forward"])
    h, w = job["size"]

    def run(length: int) -> None:
        done = 0
        if job["mode"] == "stream":
            frames = synthetic_frames(length, h, w)
            stream = super_resolve_stream(
                net, frames, job["chunk"], overlap, 4, dev, padding=padding, windows_per_forward=per_forward
            )
            for out in stream:
                done += len(to_uint8_hwc(out))
        else:
            lq = frames_to_tensor(np.stack(list(synthetic_frames(length, h, w)))).to(dev)
            with torch.inference_mode():
                done = len(to_uint8_hwc(model.predict_clip(lq)))
        if done != length:
            raise RuntimeError(f"{done} frames out of {length}")

    timed(lambda: run(INFER_WARMUP_FRAMES), dev)  # warm-up
    seconds, peak, reset = measured(lambda: run(job["length"]), dev)
    times = [seconds] + [timed(lambda: run(job["length"]), dev) for _ in range(job["repeats"] - 1)]
    return {
        "frames_per_s": job["length"] / statistics.median(times),
        "peak_mb": peak,
        "peak_reset": reset,
        "overlap": overlap,
    }


def render_inference(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    infer = INFER[tier(args.device, args.quick)]
    keys = [k for k in INFER_ARCHS if k in args.only]
    overlaps = {r["arch"]: r.get("overlap") for r in rows if "overlap" in r}
    sizes = ", ".join(f"{ARCHS[k].label} {infer['size'][k][0]}x{infer['size'][k][1]}" for k in keys)
    lines = [
        "### Inference",
        "",
        "vsrlab-infer's streaming path (`super_resolve_stream`, frames_per_chunk "
        f"{infer['chunk']}, overlap "
        + ", ".join(f"{ARCHS[k].label} {overlaps.get(k, '?')}" for k in keys)
        + ", uint8 output frames) against whole-clip inference (`VSRModule.predict_clip` of the whole "
        f"clip, uint8 output) on a synthetic LR video ({sizes}, x4), one fresh process per cell, after "
        f"a {INFER_WARMUP_FRAMES}-frame warm-up; frames/s: median of {args.infer_repeats} run(s). Peak "
        "MB: growth over the loaded model (input frames, features and output frames included).",
        "",
    ]
    header = [
        "architecture",
        "clip frames",
        "stream frames/s",
        "stream peak MB",
        "whole-clip frames/s",
        "whole-clip peak MB",
        "stream time vs whole",
    ]
    table = []
    for key in keys:
        for length in infer["lengths"]:
            cells = []
            fps = {}
            for mode in ("stream", "whole"):
                r = next(
                    (r for r in rows if r["arch"] == key and r["mode"] == mode and r["length"] == length), {}
                )
                if "error" in r or not r:
                    cells += [r.get("error", "not run"), ""]
                    continue
                fps[mode] = sig(r["frames_per_s"])
                cells += [fps[mode], peak_cell(r)]
            rel = ratio(fps["whole"], fps["stream"]) if len(fps) == 2 else ""
            table.append([ARCHS[key].label, str(length), *cells, rel])
    return lines + markdown_table(header, table, "lrrrrrr")
