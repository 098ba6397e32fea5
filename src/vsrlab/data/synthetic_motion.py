"""The motion of the synthetic clips (:mod:`vsrlab.data.synthetic`): its configuration
(:class:`MotionConfig`) and the geometry of the camera and object paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def similarity(scale: float, angle: float, src_centre: np.ndarray, dst_centre: np.ndarray) -> np.ndarray:
    """3x3 matrix of ``dst = scale * R(angle) (src - src_centre) + dst_centre``."""
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    a = np.array([[c, -s], [s, c]])
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = dst_centre - a @ src_centre
    return m


def apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def speed_range(name: str, value: Sequence[float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    if len(value) != 2 or not 0 <= float(value[0]) <= float(value[1]):
        raise ValueError(
            f"motion.{name} must be [lo, hi] with 0 <= lo <= hi (LR pixels per frame), got {value}"
        )
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class MotionConfig:
    """Ranges of the random motion, in HR pixels (and radians) per frame, except the two speed ranges.

    ``speed`` (``[lo, hi]``, LR pixels per frame): per clip, the background (camera) translates across
    the frame at a speed drawn uniformly from ``[lo, hi]`` in a uniformly random direction, instead of
    the velocity of ``camera_speed``; the speed is exact at the reference (centre) frame, and
    ``camera_acceleration``, ``camera_rotation`` and ``camera_zoom`` still add their motion (set them to
    0 for a pure constant-speed translation). ``object_speed_range`` (``[lo, hi]``, LR pixels per
    frame) does the same for the foreground, its speed and direction drawn independently of the
    camera's; null: the range of ``speed`` when that is set, else ``object_speed`` (HR pixels). Both
    null (default): the motion of earlier versions, bit for bit. Fast objects leave the frame after a
    few frames (the valid masks of the flow say where they are hidden). ``foreground``: false leaves
    the object out (the background alone; the same random draws, so the camera motion stays the same).
    """

    camera_speed: float = 6.0
    camera_acceleration: float = 0.6
    camera_rotation: float = 0.01
    camera_zoom: float = 0.01
    object_speed: float = 8.0
    object_rotation: float = 0.03
    object_size: tuple[float, float] = (0.3, 0.55)
    speed: tuple[float, float] | None = None
    object_speed_range: tuple[float, float] | None = None
    foreground: bool = True

    def __post_init__(self) -> None:
        speed = speed_range("speed", self.speed)
        object_speed = speed_range("object_speed_range", self.object_speed_range)
        object.__setattr__(self, "speed", speed)
        object.__setattr__(self, "object_speed_range", object_speed if object_speed is not None else speed)
        object.__setattr__(self, "object_size", tuple(self.object_size))


def random_direction(rng: np.random.Generator, speed: tuple[float, float], scale: int) -> np.ndarray:
    """A velocity ``(x, y)`` in HR pixels per frame: magnitude uniform in ``speed`` (LR pixels per
    frame) times ``scale``, direction uniform. Two draws, as the ``uniform(-v, v, 2)`` it replaces."""
    magnitude, direction = rng.uniform(*speed), rng.uniform(-np.pi, np.pi)
    return magnitude * scale * np.array([np.cos(direction), np.sin(direction)])


def path_start(u: np.ndarray, reach: np.ndarray, margin: float, image_size: tuple[int, int]) -> np.ndarray:
    """Start (reference-frame) point ``(x, y)`` of a camera path that moves at most ``reach`` source
    pixels either way per axis while the frame covers ``margin`` pixels around it: uniform (``u`` in
    [0, 1)) over the positions that keep every frame inside the image, or the image centre on an axis
    where the path does not fit (frames then see the image's mirror extension, see :meth:`render`)."""
    sizes = np.array([image_size[1], image_size[0]], dtype=np.float64)  # (x, y)
    lo, hi = margin + reach, sizes - 1 - margin - reach
    return np.where(hi >= lo, lo + u * (hi - lo), (sizes - 1) / 2)
