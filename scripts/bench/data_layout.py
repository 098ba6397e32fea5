"""The data of ``python -m scripts.bench.data``: a REDS-like layout written from the real Vid4 GT frames
(or synthetic frames of the same sizes and counts): GT ``train_sharp/<clip>/<frame:08d>.png``, LR
``train_sharp_bicubic/X4/...`` (MATLAB bicubic) and both LMDBs; then every file is read once so that
the OS page cache is warm."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .common import ROOT

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
