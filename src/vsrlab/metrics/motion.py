"""Motion-stratified scores: PSNR and SSIM per bin of motion magnitude.

Alignment matters differently at different speeds (a VSR transformer handles motion within about its
attention window without alignment, and needs alignment beyond it; Shi et al., "Rethinking Alignment
in Video Super-Resolution Transformers", NeurIPS 2022), so evaluation can split every output frame's
pixels by how fast they move and score each bin on its own.

Definitions (``model.evaluation.motion_bins``):

- **Motion** of pixel ``p`` of frame ``t``: the mean over the frame's temporal neighbours (``t - 1``
  and ``t + 1``; one at the clip's ends, none in a one-frame clip: motion 0) of ``|flow(p)|``, the
  Euclidean length of the optical flow from frame ``t`` to that neighbour, in LR pixels
  (:func:`neighbour_motion`). Every HR pixel gets the motion of the LR pixel it lies in (nearest
  upsampling, :func:`motion_to_hr`); ``crop_border`` of the protocol is removed as for the scores.
- **Bins** ``[edges[i], edges[i + 1])`` (default ``[0, 1, 2, 4, 8, 16, inf]`` LR pixels per frame);
  pixels outside every bin are not scored.
- **PSNR** of a bin: from the mean squared error over the bin's pixels (all channels, or MATLAB's Y
  with ``test_y_channel``), on uint8 values: ``10 log10(255^2 / MSE)``. Per clip, the MSE pools the
  bin's pixels of all the clip's scored frames; overall, of all clips (pixel-weighted, *not* the
  protocol's mean of per-frame PSNRs, so a bin's PSNR is not comparable with the clip's PSNR).
- **SSIM** of a bin: the mean of :func:`vsrlab.metrics.image.ssim_map` (the SSIM of
  :func:`calculate_ssim`, per pixel) over the bin's pixels where the map is defined: the 11x11
  window's valid positions, i.e. without 5 pixels at each side (``ssim_pixels`` counts them).
- The flow is the data's true flow (the synthetic clips' ``flow_prev`` / ``flow_next``) or SPyNet's
  on the LR frames (:class:`ClipMotion`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.metrics.image import prepare_images, ssim_map
from vsrlab.utils.images import to_uint8_hwc

CONFIG_KEY = "model.evaluation.motion_bins"
DEFAULT_EDGES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
FLOW_SOURCES = ("auto", "batch", "spynet")
DEFINITION = (
    "per pixel: mean over the temporal neighbours (t-1, t+1) of the flow magnitude from frame t to the "
    "neighbour, LR pixels per frame; HR pixels take their LR pixel's motion; bins [lo, hi); PSNR from the "
    "MSE over a bin's pixels (pixel-weighted over frames and clips); SSIM: the SSIM map averaged over a "
    "bin's pixels (11x11 window, 5-pixel border excluded)"
)
_SSIM_MARGIN = 5  # the 11x11 window's valid positions start 5 pixels in


@dataclass(frozen=True)
class MotionBinsConfig:
    """``model.evaluation.motion_bins``: ``edges`` of the bins (LR pixels per frame, increasing, >= 0,
    ``inf`` allowed), ``flow`` source (``auto``: the batch's true flow when it has one, else SPyNet;
    ``batch``; ``spynet``) and ``spynet_path`` (SPyNet weights, for data without true flow)."""

    edges: tuple[float, ...] = DEFAULT_EDGES
    flow: str = "auto"
    spynet_path: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> MotionBinsConfig | None:
        """The config of ``cfg`` (None: motion bins off; ``{}``: the defaults).

        Raises:
            ValueError: an unknown key, bad edges or flow source, or ``flow=spynet`` without
                ``spynet_path``, naming the key.
            FileNotFoundError: ``spynet_path`` is not a file (naming the key and the path).
        """
        if cfg is None:
            return None
        unknown = sorted(set(cfg) - {"edges", "flow", "spynet_path"})
        if unknown:
            raise ValueError(f"unknown keys {unknown} in {CONFIG_KEY}; known: edges, flow, spynet_path")
        edges = tuple(float(e) for e in (DEFAULT_EDGES if cfg.get("edges") is None else cfg["edges"]))
        if len(edges) < 2 or edges[0] < 0 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError(f"{CONFIG_KEY}.edges must be >= 2 increasing values >= 0, got {list(edges)}")
        flow = str(cfg.get("flow") or "auto")
        if flow not in FLOW_SOURCES:
            raise ValueError(f"{CONFIG_KEY}.flow must be one of {FLOW_SOURCES}, got {flow!r}")
        path = cfg.get("spynet_path")
        config = cls(edges, flow, str(path) if path else None)
        if flow == "spynet" or config.spynet_path:
            config.check_spynet_path()
        return config

    def check_spynet_path(self, reason: str = "flow=spynet") -> Path:
        """The SPyNet weights file; raises (naming the key) when unset or missing."""
        if not self.spynet_path:
            raise ValueError(
                f"{CONFIG_KEY}.spynet_path is not set: {reason} needs SPyNet weights for the motion "
                f"of every frame (e.g. spynet_sintel_final-3d2a1287.pth)"
            )
        path = Path(self.spynet_path)
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_KEY}.spynet_path: no SPyNet weights at {path}")
        return path


def neighbour_motion(flow_prev: Tensor, flow_next: Tensor) -> Tensor:
    """Motion magnitude ``(T, h, w)`` from the flows ``(T, 2, h, w)`` of every frame to its previous
    and its next frame (``(x, y)``, LR pixels; NaN where there is no such frame): the mean of the
    available magnitudes, 0 where neither exists."""
    magnitudes = torch.stack([flow_prev.float().norm(dim=1), flow_next.float().norm(dim=1)])
    available = ~magnitudes.isnan()
    total = torch.where(available, magnitudes, torch.zeros_like(magnitudes)).sum(0)
    return total / available.sum(0).clamp(min=1)


def motion_to_hr(motion: np.ndarray, scale: int) -> np.ndarray:
    """``(h, w)`` LR motion to ``(scale h, scale w)``: every HR pixel takes its LR pixel's value."""
    return np.repeat(np.repeat(motion, scale, axis=0), scale, axis=1)


def bin_index(motion: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of every value: ``i`` for ``edges[i] <= m < edges[i + 1]``, -1 outside every bin."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), motion, side="right") - 1
    index[index >= len(edges) - 1] = -1  # at or above the last edge, NaN (sorted last)
    return index


@dataclass
class BinSums:
    """Per-bin sums of one or more frames: squared errors of the output and of bicubic, pixels,
    SSIM-map sums and pixels; ``channels`` compared per pixel (3, or 1 for Y)."""

    sse: np.ndarray
    sse_bicubic: np.ndarray
    pixels: np.ndarray
    ssim_sum: np.ndarray
    ssim_pixels: np.ndarray
    channels: int = 3

    @classmethod
    def zeros(cls, num_bins: int, channels: int = 3) -> BinSums:
        return cls(*(np.zeros(num_bins) for _ in range(5)), channels=channels)

    def __add__(self, other: BinSums) -> BinSums:
        if other.channels != self.channels:
            raise ValueError(f"cannot add sums over {self.channels} and {other.channels} channels")
        return BinSums(
            self.sse + other.sse,
            self.sse_bicubic + other.sse_bicubic,
            self.pixels + other.pixels,
            self.ssim_sum + other.ssim_sum,
            self.ssim_pixels + other.ssim_pixels,
            self.channels,
        )


def frame_bin_sums(
    out: np.ndarray,
    bicubic: np.ndarray,
    gt: np.ndarray,
    motion_hr: np.ndarray,
    edges: Sequence[float],
    crop_border: int = 0,
    test_y_channel: bool = False,
) -> BinSums:
    """The bins' sums of one frame: ``out``, ``bicubic``, ``gt`` ``(H, W, C)`` uint8, ``motion_hr``
    ``(H, W)`` (LR pixels per frame, :func:`motion_to_hr`); ``crop_border`` and ``test_y_channel``
    as in :func:`vsrlab.metrics.calculate_psnr`."""
    if motion_hr.shape != gt.shape[:2]:
        raise ValueError(f"motion {motion_hr.shape} and frame {gt.shape[:2]} sizes differ")
    num_bins = len(edges) - 1
    a, b = prepare_images(out, gt, crop_border, test_y_channel)
    c, _ = prepare_images(bicubic, gt, crop_border, test_y_channel)
    if crop_border:
        motion_hr = motion_hr[crop_border:-crop_border, crop_border:-crop_border]
    index = bin_index(motion_hr, edges)
    scored = index >= 0

    def per_bin(values: np.ndarray, where: np.ndarray, bins: np.ndarray) -> np.ndarray:
        return np.bincount(bins[where], weights=values[where], minlength=num_bins).astype(np.float64)

    squared, squared_bicubic = (a - b) ** 2, (c - b) ** 2
    if a.ndim == 3:  # summed over channels: the MSE divides by pixels x channels
        squared, squared_bicubic = squared.sum(axis=2), squared_bicubic.sum(axis=2)
    m = _SSIM_MARGIN
    ssim_index = index[m:-m, m:-m]
    ssim_scored = ssim_index >= 0
    return BinSums(
        sse=per_bin(squared, scored, index),
        sse_bicubic=per_bin(squared_bicubic, scored, index),
        pixels=np.bincount(index[scored], minlength=num_bins).astype(np.float64),
        ssim_sum=per_bin(ssim_map(out, gt, crop_border, test_y_channel), ssim_scored, ssim_index),
        ssim_pixels=np.bincount(ssim_index[ssim_scored], minlength=num_bins).astype(np.float64),
        channels=1 if a.ndim == 2 else a.shape[2],
    )


def _psnr(sse: float, values: float) -> float | None:
    if values == 0:
        return None
    mse = sse / values
    return math.inf if mse == 0 else float(10.0 * math.log10(255.0**2 / mse))


def bin_scores(sums: BinSums, edges: Sequence[float]) -> list[dict[str, Any]]:
    """One entry per bin: ``lo``, ``hi``, ``psnr``, ``psnr_bicubic``, ``ssim`` (None for an empty
    bin; PSNR ``inf`` for an exact bin), ``pixels``, ``ssim_pixels``."""
    rows = []
    for i in range(len(edges) - 1):
        values = sums.pixels[i] * sums.channels
        ssim = sums.ssim_sum[i] / sums.ssim_pixels[i] if sums.ssim_pixels[i] else None
        rows.append(
            {
                "lo": float(edges[i]),
                "hi": float(edges[i + 1]),
                "psnr": _psnr(sums.sse[i], values),
                "psnr_bicubic": _psnr(sums.sse_bicubic[i], values),
                "ssim": None if ssim is None else float(ssim),
                "pixels": int(sums.pixels[i]),
                "ssim_pixels": int(sums.ssim_pixels[i]),
            }
        )
    return rows


@dataclass
class MotionBinScores:
    """Accumulates the per-bin sums of the frames of one evaluation pass, per clip; a frame seen
    twice (a distributed sampler's padding) counts once."""

    edges: tuple[float, ...] = DEFAULT_EDGES
    test_y_channel: bool = False
    crop_border: int = 0
    frames: dict[tuple[int, int], BinSums] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    sources: dict[int, str] = field(default_factory=dict)

    def update(
        self,
        clip: int,
        name: str,
        frames: Sequence[int],
        out: Tensor,
        bicubic: Tensor,
        gt: Tensor,
        motion: Tensor,
        source: str = "batch",
    ) -> None:
        """Add the ``frames`` of clip ``clip`` / ``name``: ``out``, ``bicubic``, ``gt``
        ``(n, C, H, W)`` in [0, 1] (scored as uint8), ``motion`` ``(n, h, w)`` in LR pixels per frame
        from the flow of ``source`` (``batch`` or ``spynet``)."""
        n, h, w = motion.shape
        scale = gt.shape[-1] // w
        if n != len(frames) or tuple(gt.shape[-2:]) != (h * scale, w * scale) or gt.shape[0] != n:
            raise ValueError(
                f"motion {tuple(motion.shape)} does not fit frames {frames} of {tuple(gt.shape)}"
            )
        self.names[clip], self.sources[clip] = name, source
        out_img, bicubic_img, gt_img = (to_uint8_hwc(x) for x in (out, bicubic, gt))
        for i, frame in enumerate(frames):
            motion_hr = motion_to_hr(motion[i].detach().cpu().double().numpy(), scale)
            self.frames[(clip, int(frame))] = frame_bin_sums(
                out_img[i],
                bicubic_img[i],
                gt_img[i],
                motion_hr,
                self.edges,
                self.crop_border,
                self.test_y_channel,
            )

    def results(self) -> dict[str, Any]:
        """``{'edges', 'flow', 'definition', 'overall': [bin, ...], 'clips': {name: [bin, ...]}}``
        (bins as :func:`bin_scores`; overall pools every clip's pixels), gathered across processes."""
        frames, names, sources = dict(self.frames), dict(self.names), dict(self.sources)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (frames, names, sources))
            for part_frames, part_names, part_sources in gathered:
                frames.update(part_frames)
                names.update(part_names)
                sources.update(part_sources)
        num_bins = len(self.edges) - 1
        per_clip: dict[int, BinSums] = {}
        for (clip, _), sums in sorted(frames.items()):
            per_clip[clip] = per_clip.get(clip, BinSums.zeros(num_bins, sums.channels)) + sums
        overall = sum(per_clip.values(), BinSums.zeros(num_bins, 1 if self.test_y_channel else 3))
        return {
            "edges": [float(e) for e in self.edges],
            "flow": ", ".join(sorted(set(sources.values()))),
            "definition": DEFINITION,
            "overall": bin_scores(overall, self.edges),
            "clips": {names.get(c, str(c)): bin_scores(s, self.edges) for c, s in per_clip.items()},
        }

    def reset(self) -> None:
        self.frames, self.names, self.sources = {}, {}, {}


class ClipMotion:
    """The motion ``(n, h, w)`` of a clip's scored frames (:func:`neighbour_motion`) from the flow
    source of ``config``: the batch's ``flow_prev`` / ``flow_next`` (the synthetic data's true flow),
    or SPyNet on the LR frames (loaded on first use from ``spynet_path``; not a submodule of the
    model: never trained, never saved)."""

    def __init__(self, config: MotionBinsConfig, pairs_per_batch: int = 8) -> None:
        self.config, self.pairs_per_batch = config, pairs_per_batch
        self._spynet: nn.Module | None = None

    def source(self, batch: Mapping[str, Any]) -> str:
        """``batch`` or ``spynet``: where the flow of ``batch`` comes from (raises naming the key)."""
        has_flow = "flow_prev" in batch and "flow_next" in batch
        if self.config.flow == "batch" and not has_flow:
            raise KeyError(
                f"{CONFIG_KEY}.flow=batch but the batch has no flow_prev / flow_next (only the synthetic "
                f"data has its true flow): use flow=spynet with {CONFIG_KEY}.spynet_path"
            )
        if self.config.flow == "spynet" or not has_flow:
            return "spynet"
        return "batch"

    def __call__(self, batch: Mapping[str, Any], lq: Tensor, frames: Sequence[int]) -> tuple[Tensor, str]:
        """``lq`` ``(T, C, h, w)``: the clip of ``batch`` (batch size 1); returns the motion
        ``(len(frames), h, w)`` and its source (:meth:`source`)."""
        frames = list(frames)
        if self.source(batch) == "batch":
            motion = neighbour_motion(batch["flow_prev"][0][frames], batch["flow_next"][0][frames])
            return motion, "batch"
        name = str(batch["key"][0]) if "key" in batch else "?"
        spynet = self._load_spynet(f"clip {name} has no true flow (flow={self.config.flow})").to(lq.device)
        length = lq.shape[0]
        pairs = [(t, n) for t in frames for n in (t - 1, t + 1) if 0 <= n < length]
        flows: dict[tuple[int, int], Tensor] = {}
        with torch.no_grad():
            for i in range(0, len(pairs), self.pairs_per_batch):
                chunk = pairs[i : i + self.pairs_per_batch]
                ref, supp = lq[[t for t, _ in chunk]], lq[[n for _, n in chunk]]
                flows.update(zip(chunk, spynet(ref.float(), supp.float()), strict=True))
        nan = lq.new_full((2, *lq.shape[-2:]), math.nan, dtype=torch.float32)
        flow_prev = torch.stack([flows.get((t, t - 1), nan) for t in frames])
        flow_next = torch.stack([flows.get((t, t + 1), nan) for t in frames])
        return neighbour_motion(flow_prev, flow_next), "spynet"

    def _load_spynet(self, reason: str) -> nn.Module:
        if self._spynet is None:
            from vsrlab.archs.spynet_arch import frozen_spynet

            path = self.config.check_spynet_path(reason)
            self._spynet = frozen_spynet(path)
        return self._spynet
