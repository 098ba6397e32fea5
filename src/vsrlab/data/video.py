"""Real video datasets (REDS, Vimeo-90K, Vid4, UDM10, Vid3oC, ...) from frame folders or LMDB.

One dataset class serves every layout; the configs under ``conf/data/`` only say where the
GT and LR frames are, which clips belong to a split and how samples are drawn:

- ``sampling='window'``: ``num_frames`` frames ``interval`` apart centred on one frame (sliding-
  window models: EDVR, TDAN); windows at clip ends are filled by reflection, as BasicSR's
  ``generate_frame_indices``. Centres are every frame (``centers='all'``, REDS) or the clip's
  middle frame (``'middle'``, Vimeo-90K septuplets). GT is the centre frame only unless
  ``gt_frames='all'``.
- ``sampling='sequence'``: ``num_frames`` consecutive frames (``interval`` apart) from a random
  start (recurrent models: BasicVSR, IconVSR, BasicVSR++), GT for every frame.
- ``sampling='clip'``: a whole clip, GT for every frame (validation and test).

Training samples take a random GT patch of ``gt_size`` with the matching LR patch, and
optionally horizontal flips, 90-degree rotations (BasicSR's ``augment``: h-flip, v-flip and
transpose, each with probability 1/2) and temporal reversal. Every random choice comes from
``(seed, index)``, so a sample is a pure function of its index: with the data module's
``stream=true`` each epoch draws new indices (new crops) and resumed runs see the same data.

Without ``lq_root`` the LR frames are made on the fly from GT by the ``degradation`` (BI or
BD), after cropping GT to a multiple of the scale.

Bad input raises :class:`~vsrlab.data.errors.DataError` naming the file, folder or key;
``skip_bad=True`` instead skips the clip with a warning and counts it in ``bad_clips``
(training draws another sample; evaluation yields ``None``, which the data module's collate
drops).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from vsrlab.data.augment import augment_arrays
from vsrlab.data.clip_lists import check_numbering, frame_name, read_meta_file
from vsrlab.data.degradations import degrade
from vsrlab.data.errors import DataError
from vsrlab.data.fingerprint import clip_fingerprint
from vsrlab.data.flow_io import read_flo
from vsrlab.data.process import configure_process
from vsrlab.data.size_check import check_scale, check_scales
from vsrlab.data.stores import Backend, FrameStore, open_stores
from vsrlab.ops.windows import Padding, window_indices
from vsrlab.utils.images import frames_to_tensor

log = logging.getLogger(__name__)

Sampling = Literal["window", "sequence", "clip"]


class VideoDataset(Dataset):
    """Clips of a frame-folder or LMDB video dataset.

    Args:
        gt_root: folder (or LMDB) of GT clip folders, or a list of them (items may be
            ``{path, clip_offset, optional}``, see :func:`~vsrlab.data.stores.open_stores`).
        lq_root: the matching LR frames (same clip and frame names); ``None`` degrades GT on the fly.
        lq_missing: ``'degrade'`` makes LR on the fly when ``lq_root`` does not exist (Vid4 with
            only GT), ``'error'`` (default) refuses.
        scale: SR factor; LR and GT sizes must match it.
        degradation: ``'BI'`` or ``'BD'`` for on-the-fly LR.
        backend: ``'folder'``, ``'lmdb'`` (``<root>.lmdb`` unless ``root`` is an LMDB) or ``'auto'``.
        clips: clip names of this split; default: ``meta_file``'s, else every clip folder
            ``clip_depth`` levels below ``gt_root`` (or ``lq_root``).
        meta_file: BasicSR meta-info or a list of clip names.
        exclude: clips left out (REDS4 for training).
        clip_depth: folder depth of clip names (1: ``000``; 2: Vimeo's ``00001/0001``).
        sampling, num_frames, centers, interval_list, padding, gt_frames: see the module docstring.
        gt_size: GT patch side for training (``None``: whole frames).
        use_hflip, use_rot, random_reverse: augmentation.
        flip_sequence: append the time-reversed frames to each training sequence (BasicSR's
            recurrent Vimeo-90K training: 7 frames become 14).
        samples_per_epoch: dataset length (default: one per item: window centre or clip).
        seed: seed of the random choices.
        flow_root: precomputed Middlebury ``.flo`` flows, ``<flow_root>/<clip>/<ref>/<frame>.flo``
            from the window centre ``ref`` to ``frame`` in LR pixels (window sampling only);
            batches then carry ``flow`` ``(T, 2, h, w)`` (the offset-fidelity loss's target).
        max_frames: use only the first ``max_frames`` frames of every clip (a protocol that scores part
            of each clip: IntVID's 14 consecutive frames in the DKSAN paper); a shorter clip is an error.
        check_numbering: refuse gaps in numbered frame names.
        skip_bad: skip bad clips with a warning instead of raising.
        name: for messages.

    Items: ``lq`` ``(T, 3, h, w)`` and ``gt`` ``(T', 3, H, W)`` float32 in [0, 1], ``key``
    (``clip`` or ``clip/centre_frame``), ``clip_index``, ``frame_index`` (first frame), and
    ``flow``/``flow_valid`` with ``flow_root``.
    """

    def __init__(
        self,
        gt_root: str | list[Any],
        lq_root: str | list[Any] | None = None,
        lq_missing: Literal["error", "degrade"] = "error",
        scale: int = 4,
        degradation: str = "BI",
        backend: Backend = "auto",
        clips: Sequence[str] | None = None,
        meta_file: str | None = None,
        exclude: Sequence[str] = (),
        clip_depth: int = 1,
        sampling: Sampling = "clip",
        num_frames: int = 5,
        centers: Literal["all", "middle"] = "all",
        interval_list: Sequence[int] = (1,),
        padding: Padding = "reflection",
        gt_frames: Literal["center", "all"] = "center",
        gt_size: int | None = None,
        use_hflip: bool = False,
        use_rot: bool = False,
        random_reverse: bool = False,
        flip_sequence: bool = False,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        flow_root: str | None = None,
        max_frames: int | None = None,
        check_numbering: bool = True,
        skip_bad: bool = False,
        name: str | None = None,
    ) -> None:
        if sampling not in ("window", "sequence", "clip"):
            raise ValueError(f"sampling must be 'window', 'sequence' or 'clip', got {sampling!r}")
        if centers not in ("all", "middle"):
            raise ValueError(f"centers must be 'all' or 'middle', got {centers!r}")
        if gt_size is not None and gt_size % scale:
            raise ValueError(f"gt_size {gt_size} is not divisible by the scale {scale}")
        if flow_root is not None and sampling != "window":
            raise ValueError("flow_root needs sampling='window' (flows are to the window centre)")
        configure_process()  # before any loader worker is forked
        self.gt = open_stores(gt_root, backend)
        self.lq = None
        if lq_root is not None:
            try:
                self.lq = open_stores(lq_root, backend)
            except DataError as err:
                if lq_missing != "degrade":
                    raise
                log.info(
                    "%s: %s; LR frames are made from GT (%s x%d)", name or gt_root, err, degradation, scale
                )
        self.scale, self.degradation = scale, degradation
        self.sampling, self.num_frames, self.centers = sampling, num_frames, centers
        self.interval_list, self.padding, self.gt_frames = [int(i) for i in interval_list], padding, gt_frames
        self.gt_size, self.use_hflip, self.use_rot, self.random_reverse = (
            gt_size,
            use_hflip,
            use_rot,
            random_reverse,
        )
        self.flip_sequence = flip_sequence
        self.seed, self.flow_root = seed, Path(flow_root) if flow_root else None
        self.check_numbering, self.skip_bad = check_numbering, skip_bad
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or null, got {max_frames}")
        self.max_frames = max_frames
        self.name = name or str(gt_root)
        self.bad_clips: dict[str, str] = {}
        self._frames: dict[str, list[str]] = {}

        counts: dict[str, int | None] = {}
        if clips is not None:
            names = [str(c) for c in clips]
        elif meta_file is not None:
            listed = read_meta_file(meta_file)
            names = [c for c, _ in listed]
            counts = dict(listed)
            self.meta_file = meta_file
        else:
            names = self.source.clips(clip_depth)
        excluded = {str(c) for c in exclude}
        self.clips = [c for c in names if c not in excluded]
        if not self.clips:
            raise DataError(
                f"{self.name}: no clips left (clips={list(names)[:5]}..., exclude={sorted(excluded)})"
            )
        for clip in self.clips:
            if not self.source.has_clip(clip):
                where = f"listed in {meta_file}" if meta_file and clips is None else "requested"
                raise DataError(f"clip {clip!r} {where} is absent: no {self.source.root / clip}")
        self.expected_counts = {c: n for c, n in counts.items() if n is not None}
        if self.lq is not None:  # refused now, not at the first batch
            check_scales(self.lq, self.gt, {c: self.frames(c) for c in self.clips}, scale)

        if sampling == "window" and centers == "all":
            self.items = [(i, t) for i, clip in enumerate(self.clips) for t in range(len(self.frames(clip)))]
        else:
            self.items = [(i, None) for i in range(len(self.clips))]
        self.samples_per_epoch = samples_per_epoch

    # ----------------------------------------------------------------- frames
    @property
    def source(self) -> FrameStore:
        """The store that lists frames: LR when it exists (Vimeo's GT LMDB holds only centre frames)."""
        return self.lq if self.lq is not None else self.gt

    def frames(self, clip: str) -> list[str]:
        """Frame keys of ``clip`` (cached), checked against the meta file and the numbering."""
        keys = self._frames.get(clip)
        if keys is None:
            keys = self.source.frames(clip)
            expected = self.expected_counts.get(clip)
            if expected is not None and expected != len(keys):
                raise DataError(
                    f"clip {clip!r}: the meta file says {expected} frames, "
                    f"{self.source.root / clip} has {len(keys)}"
                )
            if self.check_numbering:
                check_numbering([frame_name(k) for k in keys], str(self.source.root / clip))
            if self.max_frames is not None:
                if len(keys) < self.max_frames:
                    raise DataError(
                        f"clip {clip!r}: max_frames={self.max_frames} but {self.source.root / clip} has "
                        f"{len(keys)} frames"
                    )
                keys = keys[: self.max_frames]
            self._frames[clip] = keys
        return keys

    def _read_stack(self, store: FrameStore, keys: list[str]) -> np.ndarray:
        unique = {k: store.read(k) for k in dict.fromkeys(keys)}  # reflected windows repeat frames
        frames = [unique[k] for k in keys]
        for key, frame in zip(keys[1:], frames[1:], strict=True):
            if frame.shape != frames[0].shape:
                raise DataError(
                    f"frame {store.describe(key)} is {frame.shape[1]}x{frame.shape[0]} but "
                    f"{store.describe(keys[0])} of the same clip is {frames[0].shape[1]}x{frames[0].shape[0]}"
                )
        return np.stack(frames)

    def _check_scale(self, lq_key: str, lq: np.ndarray, gt_key: str, gt: np.ndarray) -> None:
        check_scale(self.lq, lq_key, lq.shape[1:], self.gt, gt_key, gt.shape[1:], self.scale)

    # ---------------------------------------------------------------- samples
    def __len__(self) -> int:
        return self.samples_per_epoch or len(self.items)

    def _select(
        self, clip: str, center: int | None, rng: np.random.Generator
    ) -> tuple[list[int], int | None]:
        """Frame positions of a sample and the position of its reference (window centre)."""
        n = len(self.frames(clip))
        interval = int(rng.choice(self.interval_list)) if self.sampling != "clip" else 1
        if self.sampling == "clip":
            return list(range(n)), None
        if self.sampling == "sequence":
            span = (self.num_frames - 1) * interval + 1
            if span > n:
                raise DataError(
                    f"clip {clip!r} has {n} frames, fewer than a sequence of {self.num_frames} "
                    f"at interval {interval} needs"
                )
            start = int(rng.integers(0, n - span + 1))
            return list(range(start, start + span, interval)), None
        if center is None:
            center = (n - 1) // 2
        try:
            return window_indices(center, n, self.num_frames, self.padding, interval), center
        except ValueError as err:
            raise DataError(f"clip {clip!r}: {err}") from None

    def load(self, index: int) -> dict[str, Any]:
        """The sample of ``index`` (raises :class:`DataError` on bad input)."""
        rng = np.random.default_rng([self.seed, index])
        clip_idx, center = self.items[index % len(self.items)]
        clip = self.clips[clip_idx]
        keys = self.frames(clip)
        positions, ref = self._select(clip, center, rng)
        lq_keys = [keys[p] for p in positions]
        if self.sampling == "window" and self.gt_frames == "center":
            gt_keys = [keys[ref]]
        else:
            gt_keys = lq_keys
        flows = self._read_flows(clip, keys, positions, ref) if self.flow_root is not None else None
        if self.lq is not None:
            gt = self._read_stack(self.gt, gt_keys)
            lq = self._read_stack(self.lq, lq_keys)
            self._check_scale(lq_keys[0], lq, gt_keys[0], gt)
            if self.gt_size is not None:
                top, left = self._patch_origin(*lq.shape[1:3], clip, rng)
                p, s = self.gt_size // self.scale, self.scale
                lq = lq[:, top : top + p, left : left + p]
                gt = gt[:, top * s : (top + p) * s, left * s : (left + p) * s]
                flows = flows[..., top : top + p, left : left + p] if flows is not None else None
        else:  # on the fly: crop GT to a multiple of the scale (and to the patch), then degrade
            source = self._read_stack(self.gt, lq_keys)
            h, w = (source.shape[1] // self.scale) * self.scale, (source.shape[2] // self.scale) * self.scale
            source = source[:, :h, :w]
            if self.gt_size is not None:
                top, left = self._patch_origin(h // self.scale, w // self.scale, clip, rng)
                p, s = self.gt_size, self.scale
                source = source[:, top * s : top * s + p, left * s : left * s + p]
                flows = flows[..., top : top + p // s, left : left + p // s] if flows is not None else None
            try:
                lq = degrade(source, self.scale, self.degradation)
            except ValueError as err:
                raise DataError(f"clip {clip!r}: {err}") from None
            gt = source[[lq_keys.index(k) for k in gt_keys]]

        fingerprint = None
        if self.sampling == "clip":  # evaluation: what was read, and whether LR belongs to GT
            fingerprint = json.dumps(
                {
                    "dataset": self.name,
                    "degradation": self.degradation,
                    **clip_fingerprint(
                        lq,
                        gt,
                        scale=self.scale,
                        degradation=self.degradation,
                        lq_from_files=self.lq is not None,
                    ),
                }
            )
        if self.use_hflip or self.use_rot:
            hflip = self.use_hflip and rng.random() < 0.5
            vflip = self.use_rot and rng.random() < 0.5
            transpose = self.use_rot and rng.random() < 0.5
            (lq, gt), flows = augment_arrays([lq, gt], flows, hflip, vflip, transpose)
        if self.random_reverse and rng.random() < 0.5:
            lq, positions = lq[::-1], positions[::-1]
            gt = gt[::-1] if len(gt) > 1 else gt
            flows = flows[::-1] if flows is not None else None

        if self.flip_sequence:
            lq, gt = np.concatenate([lq, lq[::-1]]), np.concatenate([gt, gt[::-1]])
        sample: dict[str, Any] = {
            "lq": frames_to_tensor(np.ascontiguousarray(lq)),
            "gt": frames_to_tensor(np.ascontiguousarray(gt)),
            "key": clip if ref is None else keys[ref],
            "clip_index": clip_idx,
            "frame_index": min(positions),
        }
        if fingerprint is not None:
            sample["fingerprint"] = fingerprint  # a JSON string: collated as is, also from loader workers
        if flows is not None:
            sample["flow"] = torch.from_numpy(np.ascontiguousarray(flows))
            sample["flow_valid"] = torch.ones(flows.shape[0], 1, *flows.shape[2:])
        return sample

    def _patch_origin(self, h: int, w: int, clip: str, rng: np.random.Generator) -> tuple[int, int]:
        p = self.gt_size // self.scale
        if h < p or w < p:
            raise DataError(
                f"clip {clip!r}: LR frames {w}x{h} are smaller than the LR patch {p}x{p} "
                f"(gt_size {self.gt_size} / scale {self.scale})"
            )
        return int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))

    def _read_flows(self, clip: str, keys: list[str], positions: list[int], ref: int | None) -> np.ndarray:
        ref_name = frame_name(keys[ref])
        flows = []
        for p in positions:
            path = self.flow_root / clip / ref_name / f"{frame_name(keys[p])}.flo"
            if p == ref and not path.is_file():
                flows.append(None)
                continue
            if not path.is_file():
                raise DataError(
                    f"flow file not found: {path} (flow from {ref_name} to {frame_name(keys[p])})"
                )
            flows.append(read_flo(path))
        shape = next((f.shape for f in flows if f is not None), None)
        if shape is None:
            raise DataError(f"no flow files for clip {clip!r} under {self.flow_root / clip / ref_name}")
        return np.stack([np.zeros(shape, np.float32) if f is None else f for f in flows])

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        if index < 0:
            raise IndexError(f"negative index {index}")
        if not self.skip_bad:
            return self.load(index)
        for attempt in range(len(self.items)):
            clip = self.clips[self.items[(index + attempt) % len(self.items)][0]]
            if clip in self.bad_clips:
                if self.sampling == "clip":
                    return None
                continue
            try:
                return self.load(index + attempt)
            except DataError as err:
                self.bad_clips[clip] = str(err)
                log.warning(
                    "%s: skipping bad clip %r (%d bad so far): %s", self.name, clip, len(self.bad_clips), err
                )
                if self.sampling == "clip":
                    return None
        raise DataError(f"{self.name}: every clip is bad: {self.bad_clips}")
