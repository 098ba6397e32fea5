"""Options of the synthetic clips (:class:`vsrlab.data.synthetic.SyntheticVideoDataset`) that make a
benchmark where neighbour frames carry information the centre frame lacks (``data=align_bench``).

- **Motion presets** (``motion: {preset: translation, ...}``, :data:`MOTION_PRESETS`): named sets of
  :class:`~vsrlab.data.synthetic_motion.MotionConfig` fields under the keys given beside them.
  ``translation``: camera and object translate at constant velocity (no acceleration, rotation or
  zoom), so the flow between any two frames is a constant vector per layer.
- **Speed strata** (``speeds`` and ``clips_per_speed``, :class:`SpeedStrata`): clip ``i`` moves at
  ``speeds[i // clips_per_speed]`` LR pixels per frame (camera speed exactly that, direction random;
  the object the same unless ``motion.object_speed_range`` says otherwise) and its key names the speed.
- **LR noise** (``noise_sigma``, :func:`add_noise`): independent Gaussian noise of standard deviation
  ``noise_sigma`` (0-255 scale) on every LR frame, added after the degradation, rounded and clipped to
  uint8 as the LR frames are.
- **LR occlusions** (``occlusions``, :func:`add_occlusions`): 1-3 (or ``[lo, hi]``) flat rectangles of
  random size and colour on every LR frame, independently per frame; GT and flows stay as they are,
  so what a rectangle hides in the centre frame can only come from the neighbours. Drawn before the
  noise (the sensor's noise covers them too).

Every option draws from its own random stream, a function of ``(seed, split, index, option, frame)``:
none of them changes the clip itself (layers, motion, GT, flow), and the defaults (no preset, no
strata, ``noise_sigma=0``, ``occlusions=false``) leave every sample as it was, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsrlab.data.degradations import degradation_name, degrade

MOTION_PRESETS: dict[str, dict[str, Any]] = {
    "translation": {
        "camera_acceleration": 0.0,
        "camera_rotation": 0.0,
        "camera_zoom": 0.0,
        "object_rotation": 0.0,
    },
}
DEFAULT_OCCLUSIONS = (1, 3)
OCCLUSION_SIZE = (0.1, 0.35)  # rectangle sides, fractions of the frame's sides
_NOISE_STREAM, _OCCLUSION_STREAM = 1, 2


def resolve_motion(motion: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :class:`~vsrlab.data.synthetic_motion.MotionConfig` fields of ``motion``: its ``preset``'s
    (:data:`MOTION_PRESETS`), overridden by the keys given beside it.

    Raises:
        ValueError: an unknown preset, naming the known ones.
    """
    fields = dict(motion or {})
    preset = fields.pop("preset", None)
    if preset is None:
        return fields
    if preset not in MOTION_PRESETS:
        raise ValueError(f"motion.preset must be one of {sorted(MOTION_PRESETS)} or null, got {preset!r}")
    return {**MOTION_PRESETS[preset], **fields}


@dataclass(frozen=True)
class SpeedStrata:
    """Clips stratified by speed: clip ``i`` moves at ``speeds[(i // clips_per_speed) % len(speeds)]``
    LR pixels per frame (indices past ``len(speeds) * clips_per_speed`` start over)."""

    speeds: tuple[float, ...]
    clips_per_speed: int

    def __post_init__(self) -> None:
        speeds = tuple(float(v) for v in self.speeds)
        if not speeds or min(speeds) < 0:
            raise ValueError(
                f"speeds must be a non-empty list of speeds >= 0 (LR pixels per frame), got {speeds}"
            )
        if int(self.clips_per_speed) < 1:
            raise ValueError(f"clips_per_speed must be >= 1, got {self.clips_per_speed}")
        object.__setattr__(self, "speeds", speeds)
        object.__setattr__(self, "clips_per_speed", int(self.clips_per_speed))

    @property
    def num_clips(self) -> int:
        return len(self.speeds) * self.clips_per_speed

    def speed(self, index: int) -> float:
        """The speed of clip ``index``, LR pixels per frame."""
        return self.speeds[(index // self.clips_per_speed) % len(self.speeds)]


def stratify(
    speeds: Sequence[float] | None, clips_per_speed: int, num_clips: int | None
) -> tuple[SpeedStrata | None, int]:
    """The strata of ``speeds`` (None without) and the number of clips: ``num_clips``, or when null
    1000 (no strata) or ``len(speeds) * clips_per_speed``.

    Raises:
        ValueError: ``num_clips`` set and not the strata's count.
    """
    strata = None if speeds is None else SpeedStrata(tuple(speeds), clips_per_speed)
    if num_clips is None:
        return strata, 1000 if strata is None else strata.num_clips
    if strata is not None and num_clips != strata.num_clips:
        raise ValueError(
            f"num_clips={num_clips} but speeds x clips_per_speed make {strata.num_clips}: "
            "set num_clips to null"
        )
    return strata, int(num_clips)


def occlusion_counts(occlusions: bool | Sequence[int] | None) -> tuple[int, int] | None:
    """``[lo, hi]`` rectangles per frame of the ``occlusions`` option (true: :data:`DEFAULT_OCCLUSIONS`),
    or None (false / null / ``[0, 0]``).

    Raises:
        ValueError: anything else, naming the key.
    """
    if occlusions is None or occlusions is False:
        return None
    if occlusions is True:
        return DEFAULT_OCCLUSIONS
    if isinstance(occlusions, Sequence) and not isinstance(occlusions, str) and len(occlusions) == 2:
        lo, hi = int(occlusions[0]), int(occlusions[1])
        if 0 <= lo <= hi:
            return None if hi == 0 else (lo, hi)
    raise ValueError(f"occlusions must be true, false or [lo, hi] with 0 <= lo <= hi, got {occlusions!r}")


def _frame_rng(key: Sequence[int], stream: int, frame: int) -> np.random.Generator:
    return np.random.default_rng([*key, stream, frame])


def add_noise(lq: np.ndarray, sigma: float, key: Sequence[int]) -> np.ndarray:
    """``lq`` ``(T, h, w, C)`` uint8 plus independent Gaussian noise of std ``sigma`` (0-255 scale),
    rounded (half up) and clipped to uint8; frame ``t``'s noise depends only on ``(*key, t)`` (``key``:
    ``(seed, split, index)``). ``sigma = 0`` returns ``lq`` itself."""
    if sigma < 0 or sigma > 255:
        raise ValueError(f"noise_sigma must be in [0, 255], got {sigma}")
    if sigma == 0:
        return lq
    out = np.empty_like(lq)
    for t, frame in enumerate(lq):
        noise = _frame_rng(key, _NOISE_STREAM, t).standard_normal(frame.shape) * sigma
        out[t] = np.clip(np.floor(frame + noise + 0.5), 0, 255).astype(np.uint8)
    return out


def add_occlusions(lq: np.ndarray, counts: tuple[int, int], key: Sequence[int]) -> np.ndarray:
    """A copy of ``lq`` ``(T, h, w, C)`` uint8 with ``counts[0]..counts[1]`` (uniform) flat rectangles
    of uniform random colour on every frame; sides uniform in :data:`OCCLUSION_SIZE` of the frame's
    (at least one pixel), positions uniform inside the frame; frame ``t``'s depend only on ``(*key, t)``."""
    out = lq.copy()
    h, w = lq.shape[1:3]
    for t in range(lq.shape[0]):
        rng = _frame_rng(key, _OCCLUSION_STREAM, t)
        for _ in range(int(rng.integers(counts[0], counts[1] + 1))):
            rh = max(1, round(rng.uniform(*OCCLUSION_SIZE) * h))
            rw = max(1, round(rng.uniform(*OCCLUSION_SIZE) * w))
            y0, x0 = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
            out[t, y0 : y0 + rh, x0 : x0 + rw] = rng.integers(0, 256, lq.shape[-1])
    return out


@dataclass(frozen=True)
class LRDegradation:
    """GT to LR frames of the synthetic clips: ``degradation`` (a name of
    :data:`~vsrlab.data.degradations.DEGRADATIONS`, any case), then ``occlusions`` (the
    ``occlusions`` option) and noise of std ``noise_sigma`` (0-255), when set."""

    degradation: str = "BI"
    noise_sigma: float = 0.0
    occlusions: bool | Sequence[int] | None = None

    def __post_init__(self) -> None:
        if not 0 <= float(self.noise_sigma) <= 255:
            raise ValueError(f"noise_sigma must be in [0, 255], got {self.noise_sigma}")
        object.__setattr__(self, "degradation", degradation_name(self.degradation))
        object.__setattr__(self, "noise_sigma", float(self.noise_sigma))
        object.__setattr__(self, "occlusions", occlusion_counts(self.occlusions))

    def __call__(self, gt: np.ndarray, scale: int, key: Sequence[int]) -> np.ndarray:
        """LR frames ``(T, H/scale, W/scale, C)`` uint8 of GT ``(T, H, W, C)`` uint8; ``key``:
        ``(seed, split, index)`` of the clip, the seed of its occlusions and noise."""
        lq = degrade(gt, scale, self.degradation)
        if self.occlusions is not None:
            lq = add_occlusions(lq, self.occlusions, key)
        return add_noise(lq, self.noise_sigma, key)

    def fingerprint(self) -> dict[str, Any]:
        """``{'degradation': name}`` and the options that are set (a data fingerprint's keys)."""
        out: dict[str, Any] = {"degradation": self.degradation}
        if self.noise_sigma:
            out["noise_sigma"] = self.noise_sigma
        if self.occlusions is not None:
            out["occlusions"] = list(self.occlusions)
        return out
