"""The measurements of ``python -m scripts.bench.data``: the training loader's clips/s and tensor MB/s
(each row in a fresh process), what a clip reads and how long decoding it takes, and the reference
consumer: one EDVR-M training step on this machine's CPU."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .common import child_env, module_command, timed
from .data_layout import GT_SIZE, NUM_FRAME, SCALE

MODULE = "scripts.bench.data"


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
            best = min(best, timed(lambda: decode_image(blob, key)))  # noqa: B023 (called at once)
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


def _take(batches: Iterator[dict[str, Any]], n: int, desc: str | None = None) -> int:
    """Take ``n`` batches of ``batches``; returns the bytes of their ``lq`` and ``gt`` tensors."""
    nbytes = 0
    for _ in tqdm(range(n), desc=desc, unit="batch", dynamic_ncols=True, disable=desc is None):
        batch = next(batches)
        nbytes += sum(batch[k].element_size() * batch[k].numel() for k in ("lq", "gt"))
    return nbytes


def _deliver(loader: Any, warmup: int, batches: int, desc: str) -> tuple[float, float, int]:
    """Seconds of ``warmup`` batches of ``loader`` (worker start-up included), seconds of the next
    ``batches`` batches and their tensor bytes; the workers are shut down on return."""
    it = iter(loader)
    startup = timed(lambda: _take(it, warmup))
    delivered = []
    seconds = timed(lambda: delivered.append(_take(it, batches, desc)))
    return startup, seconds, delivered[0]


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
    startup, seconds, nbytes = _deliver(
        dm.train_dataloader(), warmup, batches, f"{backend}, {workers} workers"
    )
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
    cmd = module_command(
        MODULE,
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
    )
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=child_env())
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

    times = [
        timed(step)
        for _ in tqdm(range(steps + 1), desc="EDVR-M train steps (CPU)", unit="step", dynamic_ncols=True)
    ]
    return statistics.mean(times[1:])  # the first step is the warm-up
