"""Benchmark the training data loader: clips/s and MB/s, image folders vs LMDB, 0 and 2 workers.

What is measured
    The training loader of the REDS recipe of EDVR-M (``conf/data/reds.yaml``): a
    ``VideoDataset`` with ``sampling='window'``, 5 frames, every frame a window centre, a random
    256x256 GT patch (64x64 LR, x4 BI), h-flip + rotation, in ``VSRDataModule(batch_size=4,
    stream=True).train_dataloader()``. For backend in (folder, lmdb) x ``num_workers`` in
    (0, 2) it iterates a few warm-up batches (worker start-up included there), then times
    ``--batches`` batches.

Data
    The script writes a REDS-like layout itself (in a temporary folder, or ``--workdir``):
    GT ``train_sharp/<clip>/<frame:08d>.png`` from the real Vid4 frames (``--vid4``; 4 clips,
    cropped to a multiple of 4, copied byte for byte when already so), LR
    ``train_sharp_bicubic/X4/...`` with :func:`vsrlab.data.prepare.make_lr_folder` (MATLAB
    bicubic) and the LMDBs ``train_sharp.lmdb`` and ``train_sharp_bicubic/X4.lmdb`` with
    :func:`vsrlab.data.prepare.make_lmdb` (PNG level 1, BasicSR's layout, what
    ``backend='lmdb'`` reads). Without the Vid4 frames, synthetic frames of the same sizes and
    counts are written instead and the notes say so. Every file is read once before timing, so
    the OS page cache is warm: the table measures decoding and sample assembly, not the disk.

How to read it
    ``clips/s`` = batch size x batches / seconds; ``MB/s`` = bytes of the float32 ``lq`` + ``gt``
    tensors delivered per second (MB = 2^20 bytes); ``encoded KB/clip`` = compressed PNG bytes
    a clip reads (5 LR frames, fewer at reflected clip ends, + the GT centre frame, whole
    frames: the patch is cut after decoding); ``decode ms/clip`` = time to decode those PNGs
    alone, measured separately, and its share of the loader's time per clip at 0 workers.
    The reference is measured in the same run: one EDVR-M training step (forward + backward +
    Adam, Charbonnier loss) on 4 windows of 5x3x64x64 on this machine's CPU; the loader's rate
    is given as a multiple of the clips that step consumes per second. The GPU rate is an
    *assumption* (``--gpu-clips``), not a measurement, and is labelled so in the output.

The layout is written by :mod:`scripts.bench.data_layout`, the measurements are
:mod:`scripts.bench.data_loader`'s. Writes a Markdown section "Data loading" to docs/benchmarks.md
(replacing an older one).

    python -m scripts.bench.data                    # default run, a few minutes on 2 cores
    python -m scripts.bench.data --batches 60 --keep --workdir /tmp/bench_data
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .common import ROOT, describe, hardware, markdown_table, timed, write_section
from .data_layout import (
    BACKENDS,
    GT_SIZE,
    NUM_FRAME,
    REDS_PIXELS,
    SCALE,
    WORKERS,
    shown_path,
    warm_page_cache,
    write_layout,
)
from .data_loader import clip_reads, make_dataset, run_case, time_loader, time_model

SECTION = "## Data loading"


def _fmt(x: float) -> str:
    """A rate with 3 significant-ish digits: ``107.6``, ``0.61``."""
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def render(rows: list[dict], ref: dict[str, Any], notes: str, pixels: float, lr_per_clip: float) -> str:
    """The Markdown section: notes, the loader table, the consumer table and the figures derived from
    them (numbers only: their reading is prose in docs/benchmarks.md, written once)."""
    lo, hi = ref["gpu_clips"]
    header = [
        "backend",
        "workers",
        "clips/s (median)",
        "range",
        "MB/s (tensors)",
        "encoded KB/clip",
        "decode ms/clip (share at 0 workers)",
        "vs EDVR-M CPU step",
        f"vs assumed GPU need {lo:g}-{hi:g} clips/s",
    ]
    loader = []
    for r in rows:
        share = r["decode_ms"] * r["clips_s0"] / 1000
        loader.append(
            [
                r["backend"],
                r["workers"],
                _fmt(r["clips_s"]),
                f"{r['min']:.0f}-{r['max']:.0f}",
                _fmt(r["mb_s"]),
                f"{r['kb_clip']:.0f}",
                f"{r['decode_ms']:.1f} ({100 * share:.0f}%)",
                f"{r['clips_s'] / ref['cpu_clips']:.0f}x",
                f"{r['clips_s'] / hi:.2f}-{r['clips_s'] / lo:.2f}x",
            ]
        )
    by = {(r["backend"], r["workers"]): r for r in rows}
    f0, l0, f2, l2 = by["folder", 0], by["lmdb", 0], by["folder", 2], by["lmdb", 2]
    slowest = min(r["clips_s"] for r in rows) / ref["cpu_clips"]
    steps = f"measured, mean of {ref['steps']} step{'s' * (ref['steps'] > 1)} after 1 warm-up"
    consumers = [
        [
            f"EDVR-M training step, CPU ({ref['threads']} threads)",
            f"{ref['cpu_step_s']:.2f}",
            f"{ref['cpu_clips']:.2f}",
            steps,
        ],
        [
            "EDVR-M training step, one modern GPU",
            f"{1 / ref['gpu_steps'][1]:.2f}-{1 / ref['gpu_steps'][0]:.2f}",
            f"{lo:g}-{hi:g}",
            "**assumption, not measured**",
        ],
    ]
    derived = [
        ["LR frames decoded per clip (windows at clip ends repeat frames)", f"{lr_per_clip:.2f}"],
        [
            "GT kpixels decoded per clip / share of them in the GT patch",
            f"{pixels / 1e3:.0f} / {100 * GT_SIZE**2 / pixels:.0f}%",
        ],
        [
            "LMDB / folder clips/s at 0 and 2 workers",
            f"{l0['clips_s'] / f0['clips_s']:.2f}x, {l2['clips_s'] / f2['clips_s']:.2f}x",
        ],
        [
            "LMDB / folder encoded bytes, decode time",
            f"{l0['kb_clip'] / f0['kb_clip']:.2f}x, {l0['decode_ms'] / f0['decode_ms']:.2f}x",
        ],
        [
            "2 workers / 0 workers (folder, LMDB)",
            f"{f2['clips_s'] / f0['clips_s']:.2f}x, {l2['clips_s'] / l0['clips_s']:.2f}x",
        ],
        ["slowest loader row / EDVR-M CPU step", f"{slowest:.0f}x"],
        ["REDS (1280x720) pixels / these frames'", f"{REDS_PIXELS / pixels:.1f}x"],
    ]
    lines = [
        SECTION,
        "",
        notes,
        "",
        *markdown_table(header, loader, "lrrrrrrrr"),
        "",
        *markdown_table(["consumer", "s/step (batch 4)", "clips/s", "source"], consumers, "lrrl"),
        "",
        *markdown_table(["derived figure", "value"], derived, "lr"),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--vid4",
        type=Path,
        default=ROOT / "data" / "Vid4" / "GT",
        help="Vid4 GT folder (<clip>/*.png; default: data/Vid4/GT of the repository); synthetic frames of "
        "the same sizes when absent",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to write the layout (default: a temporary folder, removed at the end)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the written layout")
    parser.add_argument("--batches", type=int, default=100, help="timed batches per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (worker start-up)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs per row, each in a fresh process (median and range reported)",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="clips per batch (EDVR-M's REDS recipe: 4)")
    parser.add_argument(
        "--model-steps", type=int, default=3, help="timed EDVR-M training steps on the CPU (after 1 warm-up)"
    )
    parser.add_argument("--prep-workers", type=int, default=2, help="processes for writing the LR frames")
    parser.add_argument(
        "--gpu-steps",
        type=float,
        nargs=2,
        default=(5.0, 10.0),
        metavar=("LOW", "HIGH"),
        help="ASSUMED EDVR-M steps/s of batch 4 on one modern GPU (not measured)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: time one loader row, print JSON
    args = parser.parse_args()
    if min(args.batches, args.model_steps, args.batch_size, args.repeats) < 1 or args.warmup < 0:
        parser.error(
            "--batches, --repeats, --model-steps and --batch-size must be positive, --warmup not negative"
        )

    from vsrlab.utils.system import keep_freed_memory

    keep_freed_memory()  # as vsrlab-train does by default (extras.cpu_malloc_cache); workers inherit it
    if args.case:
        backend, workers = args.case.split(",")
        root = args.workdir
        print(
            json.dumps(
                time_loader(
                    root / "train_sharp",
                    root / "train_sharp_bicubic" / "X4",
                    backend,
                    int(workers),
                    args.batch_size,
                    args.warmup,
                    args.batches,
                )
            )
        )
        return
    t_all = time.perf_counter()
    hw = hardware("cpu")
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="bench_data_")
        workdir = Path(tmp)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        summary: dict[str, Any] = {}
        layout_s = timed(lambda: summary.update(write_layout(args.vid4, workdir, args.prep_workers)))
        cached = warm_page_cache(workdir)

        reads = {b: clip_reads(make_dataset(summary["gt_root"], summary["lq_root"], b), b) for b in BACKENDS}
        lr_per_clip = reads[BACKENDS[0]]["lr_frames"]
        cases = [(b, w) for b in BACKENDS for w in WORKERS]
        runs: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in cases}
        for _ in range(args.repeats):  # rows interleaved, so drifting load on the machine hits all alike
            for backend, workers in cases:
                runs[backend, workers].append(run_case(workdir, backend, workers, args))
        rows = []
        for backend, workers in cases:
            rates = [r["clips_s"] for r in runs[backend, workers]]
            mb_clip = runs[backend, workers][0]["tensor_mb_clip"]
            rows.append(
                {
                    "backend": backend,
                    "workers": workers,
                    "clips_s": statistics.median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "mb_s": statistics.median(rates) * mb_clip,
                    "tensor_mb_clip": mb_clip,
                    **reads[backend],
                }
            )
        for r in rows:
            r["clips_s0"] = next(
                q["clips_s"] for q in rows if q["backend"] == r["backend"] and not q["workers"]
            )
        step_s = time_model(args.model_steps, args.batch_size)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    gpu_steps = tuple(sorted(args.gpu_steps))
    ref = {
        "cpu_step_s": step_s,
        "cpu_clips": args.batch_size / step_s,
        "steps": args.model_steps,
        "threads": torch.get_num_threads(),
        "gpu_steps": gpu_steps,
        "gpu_clips": (gpu_steps[0] * args.batch_size, gpu_steps[1] * args.batch_size),
    }
    total_s = time.perf_counter() - t_all

    clips = summary["clips"]
    n_frames = sum(n for _, n, _, _ in clips.values())
    data = (
        f"the real Vid4 GT frames (`{shown_path(args.vid4)}`)"
        if summary["source"] == "vid4"
        else f"**synthetic** frames (smooth moving textures + noise; `{args.vid4}` was not found) with the "
        "sizes and counts of Vid4's"
    )
    clip_desc = ", ".join(f"{c} = {name} ({n} frames, {w}x{h})" for c, (name, n, h, w) in clips.items())
    tensor_mb = rows[0]["tensor_mb_clip"]
    notes = " ".join(
        [
            f"Training loader of EDVR-M's REDS recipe (`VideoDataset`, window sampling, {NUM_FRAME} frames,",
            f"every frame a centre, GT patch {GT_SIZE}, h-flip + rotation;",
            f"`VSRDataModule(batch_size={args.batch_size}, stream=True, pin_memory=False,",
            "persistent_workers=False)`, each row in a fresh process) on a REDS-like layout written by the",
            f"script from {data}: {len(clips)} clips,",
            f"{n_frames} frames ({clip_desc}), {summary['cropped']} cropped to a multiple of 4; LR by",
            "`make_lr_folder` (BI x4), LMDBs by `make_lmdb` (PNG level 1).",
            f"{args.warmup} warm-up batches (worker start-up included there), then {args.batches} timed",
            f"batches; each row was run {args.repeats} times (rows interleaved, each run a fresh process):",
            "median and range of the runs.",
            f"**Warm page cache**: every file ({cached / 2**20:.0f} MB) was read once before",
            "timing, so no row waits on the disk. MB/s counts the float32 `lq` + `gt` tensors delivered",
            f"({tensor_mb:.2f} MB per clip; MB = 2^20 bytes); encoded KB/clip is the compressed PNG data",
            "a clip reads (mean over all windows); decode ms/clip is the time `decode_image` takes for those",
            "PNGs from memory (per frame the best of 3 decodes, summed per window, averaged over all",
            "windows).",
            "Reference: one EDVR-M training step (Charbonnier loss, Adam) on a random batch of",
            f"{args.batch_size} x {NUM_FRAME} x 3 x {GT_SIZE // SCALE} x {GT_SIZE // SCALE} LR",
            f"(GT {GT_SIZE}) on the CPU, measured in the same run (loader and model timed one after the",
            "other, not together).",
            f"The GPU rate is an **assumption** ({gpu_steps[0]:g}-{gpu_steps[1]:g} steps/s of batch 4 on one",
            "modern GPU, an order-of-magnitude guess for EDVR-M), *not a measurement*.",
            f"Machine (shared): {describe(hw)}; torch {hw['torch']}, glibc",
            f"keeping freed memory (vsrlab-train's default). Layout written in {layout_s:.0f} s; whole run",
            f"{total_s:.0f} s. Written by `python -m scripts.bench.data`.",
        ]
    )
    pixels = statistics.mean(h * w for _, _, h, w in summary["clips"].values())
    text = render(rows, ref, notes, pixels, lr_per_clip)
    write_section(args.output, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
