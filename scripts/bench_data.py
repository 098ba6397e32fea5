#!/usr/bin/env python
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

Writes a Markdown section "Data loading" to docs/benchmarks.md (replacing an older one).

    python scripts/bench_data.py                    # default run, a few minutes on 2 cores
    python scripts/bench_data.py --batches 60 --keep --workdir /tmp/bench_data
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchlib import write_section
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Data loading"
SCALE = 4
NUM_FRAME = 5
GT_SIZE = 256
BACKENDS = ("folder", "lmdb")
WORKERS = (0, 2)
# Vid4 GT: (clip, frames, height, width), for the synthetic fallback
VID4_SHAPES = [
    ("calendar", 41, 576, 720),
    ("city", 34, 576, 704),
    ("foliage", 49, 480, 720),
    ("walk", 47, 480, 720),
]
REDS_PIXELS = 1280 * 720


# ----------------------------------------------------------------------------- layout
def _synthetic_frame(waves: np.ndarray, h: int, w: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth moving texture (a sum of drifting sinusoids per channel) with mild noise, uint8 RGB.

    NumPy only on purpose: a multi-threaded cv2 call (``cv2.resize``) in this process before
    ``make_lr_folder`` forks its worker pool leaves the workers deadlocked in cv2's thread pool.
    """
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.full((h, w, 3), 128, np.float32)
    for c, fx, fy, speed, phase, amp in waves:
        frame[..., int(c)] += amp * np.sin(fx * x + fy * y + phase + speed * t)
    frame += rng.normal(0, 4, (h, w, 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_gt(vid4: Path, gt_root: Path) -> dict[str, Any]:
    """Write ``gt_root/<clip>/<frame:08d>.png`` from Vid4 (or synthetic frames); returns a summary."""
    from vsrlab.data.image_io import list_frames, read_image
    from vsrlab.data.prepare import encode_png, modcrop, png_shape

    real = vid4.is_dir() and any(p.is_dir() for p in vid4.iterdir())
    summary: dict[str, Any] = {"source": "vid4" if real else "synthetic", "clips": {}, "cropped": 0}
    if real:
        clips = sorted(p for p in vid4.iterdir() if p.is_dir())
        jobs = [(f"{i:03d}", c.name, list_frames(c)) for i, c in enumerate(clips)]
        total = sum(len(f) for _, _, f in jobs)
    else:
        total = sum(n for _, n, _, _ in VID4_SHAPES)
    with tqdm(total=total, desc="GT frames", unit="frame", dynamic_ncols=True) as bar:
        if real:
            for clip, name, frames in jobs:
                out = gt_root / clip
                out.mkdir(parents=True, exist_ok=True)
                for t, path in enumerate(frames):
                    dst = out / f"{t:08d}.png"
                    shape = png_shape(path.read_bytes()[:32]) if path.suffix.lower() == ".png" else None
                    if shape is not None and not shape[0] % SCALE and not shape[1] % SCALE and shape[2] == 3:
                        shutil.copyfile(path, dst)
                    else:
                        img = read_image(path)
                        crop = modcrop(img, SCALE)
                        summary["cropped"] += crop.shape != img.shape
                        shape = crop.shape
                        dst.write_bytes(encode_png(np.ascontiguousarray(crop), 3, str(dst)))
                    bar.update()
                summary["clips"][clip] = (name, len(frames), shape[0], shape[1])
        else:
            for i, (name, n, h, w) in enumerate(VID4_SHAPES):
                clip = f"{i:03d}"
                out = gt_root / clip
                out.mkdir(parents=True, exist_ok=True)
                rng = np.random.default_rng(i)
                # per channel 4 waves: (channel, fx, fy, speed, phase, amplitude)
                waves = np.stack(
                    [
                        np.repeat(np.arange(3), 4),
                        rng.uniform(-0.2, 0.2, 12),
                        rng.uniform(-0.2, 0.2, 12),
                        rng.uniform(-0.3, 0.3, 12),
                        rng.uniform(0, 2 * np.pi, 12),
                        rng.uniform(10, 30, 12),
                    ],
                    axis=1,
                )
                for t in range(n):
                    (out / f"{t:08d}.png").write_bytes(encode_png(_synthetic_frame(waves, h, w, t, rng), 3))
                    bar.update()
                summary["clips"][clip] = (name, n, h, w)
    return summary


def write_layout(vid4: Path, root: Path, workers: int) -> dict[str, Any]:
    """The REDS-like layout under ``root``: GT, BI x4 LR and both LMDBs."""
    from vsrlab.data.prepare import make_lmdb, make_lr_folder

    gt, lq = root / "train_sharp", root / "train_sharp_bicubic" / "X4"
    summary = write_gt(vid4, gt)
    make_lr_folder(gt, lq, scale=SCALE, degradation="BI", workers=workers, progress=True)
    make_lmdb(gt, root / "train_sharp.lmdb", progress=True)
    make_lmdb(lq, lq.with_name("X4.lmdb"), progress=True)
    summary.update(gt_root=gt, lq_root=lq)
    return summary


def warm_page_cache(root: Path) -> int:
    """Read every file below ``root`` once (so timings see a warm OS page cache); returns bytes read."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    total = 0
    for path in tqdm(files, desc="warming page cache", unit="file", dynamic_ncols=True):
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total


def shown_path(path: Path) -> str:
    """``path`` relative to the repository's parent when it lies there (no machine paths in docs)."""
    try:
        return "../" + path.resolve().relative_to(ROOT.parent.resolve()).as_posix()
    except ValueError:
        return path.name


# ---------------------------------------------------------------------------- loader
def make_dataset(gt_root: Path, lq_root: Path, backend: str) -> Any:
    """EDVR-M's REDS training set (5-frame windows, GT patch 256, flips and rotations)."""
    from vsrlab.data import VideoDataset

    return VideoDataset(
        gt_root=str(gt_root),
        lq_root=str(lq_root),
        backend=backend,
        sampling="window",
        num_frames=NUM_FRAME,
        centers="all",
        gt_size=GT_SIZE,
        use_hflip=True,
        use_rot=True,
        seed=0,
    )


def encoded_frames(store: Any) -> dict[str, bytes]:
    """The encoded (PNG) bytes of every frame of a folder or LMDB store, by key."""
    from vsrlab.data.stores import LmdbStore, lmdb_env

    if isinstance(store, LmdbStore):
        with lmdb_env(store.root).begin() as txn:
            return {k.decode(): bytes(v) for k, v in txn.cursor()}
    return {k: store.path(k).read_bytes() for clip in store.clips() for k in store.frames(clip)}


def decode_ms(blobs: dict[str, bytes], desc: str, repeats: int = 3) -> dict[str, float]:
    """Milliseconds to decode each encoded frame from memory with :func:`decode_image`, the best of
    ``repeats`` decodes (the least disturbed by other load on a shared machine)."""
    from vsrlab.data.image_io import decode_image

    times = {}
    for key, blob in tqdm(blobs.items(), desc=desc, unit="frame", dynamic_ncols=True):
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            decode_image(blob, key)
            best = min(best, time.perf_counter() - t0)
        times[key] = 1000 * best
    return times


def clip_reads(ds: Any, backend: str) -> dict[str, float]:
    """Means over every window of ``ds`` of what one clip reads: encoded bytes, distinct LR frames
    and the milliseconds needed to decode them (measured per frame, from memory)."""
    from vsrlab.ops.windows import window_indices

    lq, gt = encoded_frames(ds.lq), encoded_frames(ds.gt)
    lq_ms, gt_ms = decode_ms(lq, f"decoding LR ({backend})"), decode_ms(gt, f"decoding GT ({backend})")
    nbytes, frames, ms = [], [], []
    for clip_idx, center in ds.items:
        keys = ds.frames(ds.clips[clip_idx])
        window = [keys[p] for p in set(window_indices(center, len(keys), NUM_FRAME, ds.padding, 1))]
        nbytes.append(sum(len(lq[k]) for k in window) + len(gt[keys[center]]))
        ms.append(sum(lq_ms[k] for k in window) + gt_ms[keys[center]])
        frames.append(len(window))
    return {
        "kb_clip": statistics.mean(nbytes) / 1024,
        "lr_frames": statistics.mean(frames),
        "decode_ms": statistics.mean(ms),
    }


def time_loader(
    gt_root: Path, lq_root: Path, backend: str, workers: int, batch_size: int, warmup: int, batches: int
) -> dict[str, float]:
    """Clips/s and tensor MB/s of ``train_dataloader()`` after ``warmup`` batches."""
    from vsrlab.data import VSRDataModule

    ds = make_dataset(gt_root, lq_root, backend)
    # one epoch long enough for warm-up + timing (stream=True: indices past the items wrap around)
    ds.samples_per_epoch = max(len(ds.items), (warmup + batches) * batch_size)
    dm = VSRDataModule(
        train=ds,
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=False,
        persistent_workers=False,
        stream=True,
    )
    it = iter(dm.train_dataloader())
    t_start = time.perf_counter()
    for _ in range(warmup):
        next(it)
    startup = time.perf_counter() - t_start
    nbytes = 0
    t0 = time.perf_counter()
    for _ in tqdm(range(batches), desc=f"{backend}, {workers} workers", unit="batch", dynamic_ncols=True):
        batch = next(it)
        nbytes += sum(batch[k].element_size() * batch[k].numel() for k in ("lq", "gt"))
    seconds = time.perf_counter() - t0
    del it  # shuts the workers down
    clips = batch_size * batches
    return {
        "seconds": seconds,
        "clips_s": clips / seconds,
        "mb_s": nbytes / seconds / 2**20,
        "tensor_mb_clip": nbytes / clips / 2**20,
        "warmup_s": startup,
    }


def run_case(workdir: Path, backend: str, workers: int, args: argparse.Namespace) -> dict[str, float]:
    """:func:`time_loader` in a fresh process (progress bars pass through on stderr).

    A fresh process per row keeps the rows independent, and is needed for LMDB: py-lmdb refuses
    to open an environment in a forked worker when the parent process had it open at fork time
    ("already open in this process"), which the size and decode measurements here do.
    """
    cmd = [
        sys.executable,
        __file__,
        "--workdir",
        str(workdir),
        "--batches",
        str(args.batches),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
        "--case",
        f"{backend},{workers}",
    ]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- model
def time_model(steps: int, batch_size: int) -> float:
    """Seconds per EDVR-M training step (forward + backward + Adam) on CPU, after one warm-up step."""
    from vsrlab.archs import EDVR
    from vsrlab.losses import CharbonnierLoss

    torch.manual_seed(0)
    model = EDVR(
        num_feat=64,
        num_frame=NUM_FRAME,
        deformable_groups=8,
        num_extract_block=5,
        num_reconstruct_block=10,
        with_tsa=True,
    )
    opt = torch.optim.Adam(model.parameters(), lr=4e-4, betas=(0.9, 0.99))
    loss_fn = CharbonnierLoss()
    p = GT_SIZE // SCALE
    lq = torch.rand(batch_size, NUM_FRAME, 3, p, p)
    gt = torch.rand(batch_size, 3, GT_SIZE, GT_SIZE)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(lq), gt).backward()
        opt.step()

    times = []
    for i in tqdm(range(steps + 1), desc="EDVR-M train steps (CPU)", unit="step", dynamic_ncols=True):
        t0 = time.perf_counter()
        step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.mean(times)


# ---------------------------------------------------------------------------- output
def _fmt(x: float) -> str:
    """A rate with 3 significant-ish digits: ``107.6``, ``0.61``."""
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def render(rows: list[dict], ref: dict[str, Any], notes: str, pixels: float, lr_per_clip: float) -> str:
    """The Markdown section: notes, the loader table, the consumer table and the figures derived from
    them (numbers only: their reading is prose in docs/benchmarks.md, written once)."""
    lo, hi = ref["gpu_clips"]
    lines = [
        SECTION,
        "",
        notes,
        "",
        f"| backend | workers | clips/s (median) | range | MB/s (tensors) | encoded KB/clip | "
        f"decode ms/clip (share at 0 workers) | vs EDVR-M CPU step | vs assumed GPU need {lo:g}-{hi:g} "
        "clips/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        share = r["decode_ms"] * r["clips_s0"] / 1000
        lines.append(
            f"| {r['backend']} | {r['workers']} | {_fmt(r['clips_s'])} | "
            f"{r['min']:.0f}-{r['max']:.0f} | {_fmt(r['mb_s'])} | "
            f"{r['kb_clip']:.0f} | {r['decode_ms']:.1f} ({100 * share:.0f}%) | "
            f"{r['clips_s'] / ref['cpu_clips']:.0f}x | "
            f"{r['clips_s'] / hi:.2f}-{r['clips_s'] / lo:.2f}x |"
        )
    by = {(r["backend"], r["workers"]): r for r in rows}
    f0, l0, f2, l2 = by["folder", 0], by["lmdb", 0], by["folder", 2], by["lmdb", 2]
    slowest = min(r["clips_s"] for r in rows) / ref["cpu_clips"]
    lines += [
        "",
        "| consumer | s/step (batch 4) | clips/s | source |",
        "| --- | ---: | ---: | --- |",
        f"| EDVR-M training step, CPU ({ref['threads']} threads) | {ref['cpu_step_s']:.2f} | "
        f"{ref['cpu_clips']:.2f} | measured, mean of {ref['steps']} step{'s' * (ref['steps'] > 1)} "
        "after 1 warm-up |",
        f"| EDVR-M training step, one modern GPU | {1 / ref['gpu_steps'][1]:.2f}-"
        f"{1 / ref['gpu_steps'][0]:.2f} | {lo:g}-{hi:g} | **assumption, not measured** |",
        "",
        "| derived figure | value |",
        "| --- | ---: |",
        f"| LR frames decoded per clip (windows at clip ends repeat frames) | {lr_per_clip:.2f} |",
        f"| GT kpixels decoded per clip / share of them in the GT patch | {pixels / 1e3:.0f} / "
        f"{100 * GT_SIZE**2 / pixels:.0f}% |",
        f"| LMDB / folder clips/s at 0 and 2 workers | {l0['clips_s'] / f0['clips_s']:.2f}x, "
        f"{l2['clips_s'] / f2['clips_s']:.2f}x |",
        f"| LMDB / folder encoded bytes, decode time | {l0['kb_clip'] / f0['kb_clip']:.2f}x, "
        f"{l0['decode_ms'] / f0['decode_ms']:.2f}x |",
        f"| 2 workers / 0 workers (folder, LMDB) | {f2['clips_s'] / f0['clips_s']:.2f}x, "
        f"{l2['clips_s'] / l0['clips_s']:.2f}x |",
        f"| slowest loader row / EDVR-M CPU step | {slowest:.0f}x |",
        f"| REDS (1280x720) pixels / these frames' | {REDS_PIXELS / pixels:.1f}x |",
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
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="bench_data_")
        workdir = Path(tmp)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        summary = write_layout(args.vid4, workdir, args.prep_workers)
        layout_s = time.perf_counter() - t0
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
    hw = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
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
            f"Machine: {hw} (shared), torch {torch.__version__}, {torch.get_num_threads()} threads, glibc",
            f"keeping freed memory (vsrlab-train's default). Layout written in {layout_s:.0f} s; whole run",
            f"{total_s:.0f} s. Written by `python scripts/bench_data.py`.",
        ]
    )
    pixels = statistics.mean(h * w for _, _, h, w in summary["clips"].values())
    text = render(rows, ref, notes, pixels, lr_per_clip)
    write_section(args.output, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
