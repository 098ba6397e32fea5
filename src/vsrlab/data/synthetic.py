"""Synthetic video clips with known motion, made on the fly from images bundled with scikit-image.

Each clip is a background image moved by a smooth random camera motion (translation with
constant acceleration, rotation, zoom) and a foreground layer cut from another image (an
ellipse) moving independently on top of it, so there are occlusions and disocclusions. Frames
are rendered at high resolution (GT), degraded to LR (BI, :func:`matlab_imresize`, or another of
:data:`~vsrlab.data.degradations.DEGRADATIONS`), and the true optical flow is computed analytically
from the layer transforms. Motion presets, clips stratified by speed, LR noise and LR occlusions are
options (:mod:`vsrlab.data.synthetic_options`; all off by default).

Flow convention (what :func:`vsrlab.ops.flow_warp` expects): ``flow[t]`` ``(2, h, w)``, in LR
pixels, ``(x, y)`` order, maps each pixel ``p`` of the reference frame to ``p + flow[t](p)`` in
frame ``t``, so ``flow_warp(lq[t], flow[t])`` reproduces the reference frame wherever the
point is visible in frame ``t`` (``flow_valid[t]``). The reference frame is the window's centre.

Every sample is a pure function of ``(seed, split, index)``: no files are read or written, any
worker can make any sample, and a resumed run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vsrlab.data.fingerprint import clip_fingerprint
from vsrlab.data.synthetic_motion import MotionConfig, apply, path_start, random_direction, similarity
from vsrlab.data.synthetic_options import LRDegradation, resolve_motion, stratify
from vsrlab.utils.images import frames_to_tensor

# Every colour or grey sample image scikit-image ships in its wheel (nothing is downloaded).
IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "camera",
    "retina",
    "colorwheel",
    "moon",
    "coins",
    "clock",
)
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@cache
def load_image(name: str) -> np.ndarray:
    """A scikit-image sample image as ``(H, W, 3)`` uint8 RGB (grey images are replicated)."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"unknown scikit-image sample image {name!r}")
    img = np.asarray(loader())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


class SyntheticClip:
    """One random two-layer clip: rendering of HR frames and analytic flow between frames.

    Layer transforms map layer (source image) coordinates to frame coordinates; frame ``t``
    shows the foreground where its ellipse covers the pixel and the background elsewhere. ``size`` is
    the HR frame size; ``scale`` the SR factor, the unit of ``motion``'s speed ranges (LR pixels).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        images: Sequence[str],
        num_frames: int,
        size: tuple[int, int],
        motion: MotionConfig,
        scale: int = 1,
    ) -> None:
        h, w = size
        self.size, self.foreground = size, bool(motion.foreground)
        bg_name, fg_name = rng.choice(len(images), size=2, replace=len(images) < 2)
        self.bg, self.fg = load_image(images[bg_name]), load_image(images[fg_name])
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        ref = (num_frames - 1) / 2
        tau = np.arange(num_frames) - ref

        # camera: background source point at the frame centre, rotation and zoom per frame
        bh, bw = self.bg.shape[:2]
        if motion.speed is None:
            start = np.array([rng.uniform(0.3, 0.7) * (bw - 1), rng.uniform(0.3, 0.7) * (bh - 1)])
            vel = rng.uniform(-motion.camera_speed, motion.camera_speed, 2)
        else:  # the same number of draws, so the rest of the clip (layers, object) stays the same
            u_start, frame_vel = rng.uniform(0, 1, 2), random_direction(rng, motion.speed, scale)
        acc = rng.uniform(-motion.camera_acceleration, motion.camera_acceleration, 2)
        angle0, omega = rng.uniform(-0.2, 0.2), rng.uniform(-motion.camera_rotation, motion.camera_rotation)
        zoom0, zeta = rng.uniform(0.9, 1.1), rng.uniform(-motion.camera_zoom, motion.camera_zoom)
        if motion.speed is not None:
            # a source point moves across the frame at -zoom * R(angle) * vel: |vel| = speed / zoom0
            vel = -similarity(1 / zoom0, -angle0, np.zeros(2), np.zeros(2))[:2, :2] @ frame_vel
            reach = np.abs(vel) * ref + 0.5 * np.abs(acc) * ref * ref
            zoom_min = zoom0 * max(1 - abs(zeta) * ref, 0.5)
            margin = np.hypot(w, h) / 2 / zoom_min + 2  # the frame's half diagonal, cubic taps
            start = path_start(u_start, reach, margin, (bh, bw))
        self.bg_tf = [
            similarity(
                zoom0 * (1 + zeta * t), angle0 + omega * t, start + vel * t + 0.5 * acc * t * t, centre
            )
            for t in tau
        ]

        # foreground: an ellipse cut from another image, moving on its own
        fh, fw = self.fg.shape[:2]
        side = min(h, w)
        self.radii = np.array([rng.uniform(*motion.object_size), rng.uniform(*motion.object_size)]) * side / 2
        src = np.array([rng.uniform(0.25, 0.75) * (fw - 1), rng.uniform(0.25, 0.75) * (fh - 1)])
        pos = centre + rng.uniform(-0.25, 0.25, 2) * np.array([w, h])
        if motion.object_speed_range is None:
            fvel = rng.uniform(-motion.object_speed, motion.object_speed, 2)
        else:
            fvel = random_direction(rng, motion.object_speed_range, scale)
        phi0, fomega = (
            rng.uniform(-np.pi, np.pi),
            rng.uniform(-motion.object_rotation, motion.object_rotation),
        )
        self.fg_src_centre = src
        self.fg_tf = [similarity(1.0, phi0 + fomega * t, src, pos + fvel * t) for t in tau]

    def _fg_radius(self, t: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised elliptic radius of frame-``t`` points in the foreground (< 1 inside; inf: none)."""
        if not self.foreground:
            return np.full(np.shape(x), np.inf)
        qx, qy = apply(np.linalg.inv(self.fg_tf[t]), x, y)
        return np.sqrt(
            ((qx - self.fg_src_centre[0]) / self.radii[0]) ** 2
            + ((qy - self.fg_src_centre[1]) / self.radii[1]) ** 2
        )

    def render(self) -> np.ndarray:
        """HR frames ``(T, H, W, 3)`` uint8.

        Layers are sampled with OpenCV's ``BORDER_REFLECT_101``: beyond its borders a source image
        continues as its mirror image, a static canvas, so the true flow stays exact where a frame
        sees past the border (fast cameras whose path does not fit the image, see :class:`MotionConfig`).
        """
        h, w = self.size
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        frames = []
        for t in range(len(self.bg_tf)):
            bg = cv2.warpAffine(
                self.bg, self.bg_tf[t][:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
            ).astype(np.float64)
            fg = cv2.warpAffine(
                self.fg, self.fg_tf[t][:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
            ).astype(np.float64)
            # about one pixel of antialiased edge: (1 - rho) * radius approximates the distance
            alpha = np.clip(0.5 + (1 - self._fg_radius(t, xs, ys)) * self.radii.min(), 0, 1)[..., None]
            frames.append(np.clip(np.round(alpha * fg + (1 - alpha) * bg), 0, 255).astype(np.uint8))
        return np.stack(frames)

    def flow_to(
        self, ref: int, scale: int, frames: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """LR flow from frame ``ref`` to every frame (or to ``frames``) and its validity.

        Returns:
            ``flow`` ``(T, 2, h, w)`` float32 ``(x, y)`` in LR pixels and ``valid``
            ``(T, 1, h, w)`` float32: 1 where the reference pixel's point is visible in frame t
            (``T``: the number of ``frames`` when given).
        """
        h, w = self.size[0] // scale, self.size[1] // scale
        ly, lx = np.mgrid[0:h, 0:w].astype(np.float64)
        x, y = (lx + 0.5) * scale - 0.5, (ly + 0.5) * scale - 0.5  # LR pixel centres in HR pixels
        on_fg = self._fg_radius(ref, x, y) < 1
        flows, valids = [], []
        for t in range(len(self.bg_tf)) if frames is None else frames:
            bx, by = apply(self.bg_tf[t] @ np.linalg.inv(self.bg_tf[ref]), x, y)
            fx, fy = apply(self.fg_tf[t] @ np.linalg.inv(self.fg_tf[ref]), x, y)
            tx, ty = np.where(on_fg, fx, bx), np.where(on_fg, fy, by)
            visible = on_fg | (self._fg_radius(t, tx, ty) >= 1)
            inside = (tx >= 0) & (tx <= self.size[1] - 1) & (ty >= 0) & (ty <= self.size[0] - 1)
            flows.append(np.stack([(tx - x) / scale, (ty - y) / scale]))
            valids.append((visible & inside)[None])
        return np.stack(flows).astype(np.float32), np.stack(valids).astype(np.float32)

    def neighbour_flows(self, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """LR flow from every frame to its previous and to its next frame.

        Returns:
            ``flow_prev`` and ``flow_next``, ``(T, 2, h, w)`` float32 ``(x, y)`` in LR pixels:
            ``flow_prev[t]`` maps frame ``t``'s pixels to frame ``t - 1`` (:meth:`flow_to` of ``t``),
            ``flow_next[t]`` to frame ``t + 1``; NaN where there is no such frame (``flow_prev[0]``,
            ``flow_next[T - 1]``).
        """
        num_frames = len(self.bg_tf)
        shape = (num_frames, 2, self.size[0] // scale, self.size[1] // scale)
        flow_prev, flow_next = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
        for t in range(num_frames):
            neighbours = [n for n in (t - 1, t + 1) if 0 <= n < num_frames]
            if neighbours:
                flows, _ = self.flow_to(t, scale, neighbours)
                for n, flow in zip(neighbours, flows, strict=True):
                    (flow_prev if n < t else flow_next)[t] = flow
        return flow_prev, flow_next


class SyntheticVideoDataset(Dataset):
    """Clips with known motion; training windows or whole validation clips.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``; seeds the clips, so splits never share a clip.
        num_clips: number of samples (one epoch; null: 1000, or ``len(speeds) * clips_per_speed``);
            any index >= 0 is valid, so a sampler can stream past it.
        num_frames: frames per sample (the sliding window for training, the clip for validation).
        lq_size: ``(h, w)`` of LR frames; GT frames are ``scale`` times larger.
        scale: SR factor.
        gt_size: side of square GT frames, as the real datasets' ``gt_size`` (a recipe's patch
            size then carries over to the synthetic clips); overrides ``lq_size`` when set, must
            be a multiple of ``scale``.
        seed: base seed.
        images: names of scikit-image sample images to draw layers from (default: all of
            :data:`IMAGES`, for every split; give disjoint lists to hold images out of training).
        motion: ranges of the random motion (:class:`MotionConfig` fields), and ``preset``: a named set of
            them (``translation``; :data:`~vsrlab.data.synthetic_options.MOTION_PRESETS`).
        flow_pairs: validation and test clips carry ``flow_pairs`` (below); false leaves them out
            (they grow as ``T**2``: 2 MB for 8 frames of 64x64, 330 MB for 100 frames).
        degradation: ``BI``, ``BD``, ``area`` or ``bicubic_noaa`` (:mod:`vsrlab.data.degradations`).
        noise_sigma: std of Gaussian noise on every LR frame (0-255; 0: none).
        occlusions: flat rectangles on the LR frames: true (1-3 per frame), ``[lo, hi]`` or false.
        speeds, clips_per_speed: clip ``i`` moves at ``speeds[i // clips_per_speed]`` LR pixels per
            frame (``motion.speed = [v, v]``), named ``<split>_speed<v>_<index>``; null: no strata.
        (These five: :mod:`vsrlab.data.synthetic_options`.)

    Each item is a dict: ``lq`` ``(T, 3, h, w)`` and ``gt`` ``(T, 3, H, W)`` float32 in [0, 1];
    ``flow`` ``(T, 2, h, w)`` and ``flow_valid`` ``(T, 1, h, w)`` to the centre frame
    (index ``T // 2``); ``clip_index`` (int) and ``key`` (str). Validation and test clips also have
    ``flow_prev`` and ``flow_next`` ``(T, 2, h, w)``, from each frame to its previous / next frame
    (NaN at the clip's ends; :meth:`SyntheticClip.neighbour_flows`), the motion of
    :mod:`vsrlab.metrics.motion`; ``flow_pairs`` ``(T, T, 2, h, w)``, ``flow_pairs[c, t]`` the flow
    from frame ``c`` to frame ``t`` (:meth:`SyntheticClip.flow_to` of ``c``; zero, up to 1e-15, at
    ``t = c``): the flows of the sliding window centred on any frame (``model.flow_source=batch``, the
    true flow given to the network instead of its own); and ``fingerprint``.
    """

    def __init__(
        self,
        split: Literal["train", "val", "test"] = "train",
        num_clips: int | None = None,
        num_frames: int = 5,
        lq_size: Sequence[int] = (32, 32),
        scale: int = 4,
        seed: int = 0,
        images: Sequence[str] | None = None,
        motion: dict[str, Any] | None = None,
        gt_size: int | None = None,
        flow_pairs: bool = True,
        degradation: str = "BI",
        noise_sigma: float = 0.0,
        occlusions: bool | Sequence[int] = False,
        speeds: Sequence[float] | None = None,
        clips_per_speed: int = 1,
    ) -> None:
        if gt_size is not None:
            if gt_size % scale:
                raise ValueError(f"gt_size={gt_size} is not a multiple of scale={scale}")
            lq_size = (gt_size // scale, gt_size // scale)
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(_SPLIT_IDS)}, got {split!r}")
        self.strata, num_clips = stratify(speeds, clips_per_speed, num_clips)
        if num_frames < 1 or num_clips < 1:
            raise ValueError(f"num_frames and num_clips must be >= 1, got {num_frames} and {num_clips}")
        self.split, self.num_clips, self.num_frames = split, num_clips, num_frames
        self.lr = LRDegradation(degradation, noise_sigma, occlusions)
        self.lq_size = (int(lq_size[0]), int(lq_size[1]))
        self.scale, self.seed, self.flow_pairs = scale, seed, bool(flow_pairs)
        self.images = tuple(images) if images is not None else IMAGES
        self._motion = resolve_motion(motion)
        self.motion = MotionConfig(**self._motion)
        speeds = () if self.strata is None else self.strata.speeds
        self._speed_motion = {v: MotionConfig(**{**self._motion, "speed": (v, v)}) for v in speeds}
        for name in self.images:
            load_image(name)  # fail early, naming a bad image

    def __len__(self) -> int:
        return self.num_clips

    def clip_name(self, index: int) -> str:
        if self.strata is not None:
            return f"{self.split}_speed{self.strata.speed(index):g}_{index:05d}"
        return f"{self.split}_{index:05d}"

    def make_clip(self, index: int) -> SyntheticClip:
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], index])
        gt_size = (self.lq_size[0] * self.scale, self.lq_size[1] * self.scale)
        motion = self.motion if self.strata is None else self._speed_motion[self.strata.speed(index)]
        return SyntheticClip(rng, self.images, self.num_frames, gt_size, motion, self.scale)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            raise IndexError(f"negative index {index}")
        clip = self.make_clip(index)
        gt = clip.render()
        lq = self.lr(gt, self.scale, (self.seed, _SPLIT_IDS[self.split], index))
        flow, valid = clip.flow_to(self.num_frames // 2, self.scale)
        sample = {
            "lq": frames_to_tensor(lq),
            "gt": frames_to_tensor(gt),
            "flow": torch.from_numpy(flow),
            "flow_valid": torch.from_numpy(valid),
            "clip_index": index,
            "key": self.clip_name(index),
        }
        if self.split != "train":  # evaluation clips: the motion of every frame (motion-stratified scores)
            flow_prev, flow_next = clip.neighbour_flows(self.scale)
            sample["flow_prev"] = torch.from_numpy(flow_prev)
            sample["flow_next"] = torch.from_numpy(flow_next)
            if self.flow_pairs:  # the flows of every window centre (model.flow_source=batch)
                pairs = [clip.flow_to(c, self.scale)[0] for c in range(self.num_frames)]
                sample["flow_pairs"] = torch.from_numpy(np.stack(pairs))
            # what was evaluated (metrics.json's data fingerprint)
            sample["fingerprint"] = json.dumps(
                {
                    "dataset": f"synthetic/{self.split}",
                    **self.lr.fingerprint(),
                    **clip_fingerprint(lq, gt, scale=self.scale, lq_from_files=False),
                }
            )
        return sample
