"""Degradations that make low-resolution frames: BI (MATLAB bicubic, :mod:`vsrlab.ops.resize`), BD
(blur + subsample, :func:`blur_downsample`), and two that alias more than BI: ``area`` (the mean of
each ``scale x scale`` block, :func:`area_downsample`; OpenCV's ``INTER_AREA`` at integer factors) and
``bicubic_noaa`` (MATLAB bicubic without antialiasing: the cubic kernel sampled at the LR positions
without widening, MATLAB ``imresize(..., 'Antialiasing', false)``).

MATLAB's ``imresize(img, scale, 'bicubic')`` (antialiasing on) is the BI degradation of the VSR
literature and the bicubic baseline they report. It resizes one dimension at a time (rows
first when both scales are equal) with the Keys cubic kernel (a = -0.5), widened by 1/scale
when shrinking, weights normalised to sum 1 and symmetric (mirror) padding at the borders.
uint8 images are resized in float64 and rounded once at the end: with this, BI-degraded and
bicubic-upsampled Vid4 scores 23.78 dB / 0.6347 (Y), the published baseline; rounding after
each dimension instead gives 0.6346.

Each 1-D resize is a sparse ``(out, in)`` matrix here, with the mirrored border folded in, so an
image resize is ``W_h @ img @ W_w.T`` for numpy arrays and tensors alike.
"""

from __future__ import annotations

import cv2
import numpy as np

from vsrlab.ops.resize import matlab_imresize


def _check_divisible(frames: np.ndarray, scale: int) -> tuple[int, int]:
    h, w = frames.shape[-3:-1]
    if h % scale or w % scale:
        raise ValueError(f"frame size {h}x{w} is not divisible by the scale {scale}")
    return h, w


def bicubic_downsample(frames: np.ndarray, scale: int, antialiasing: bool = True) -> np.ndarray:
    """BI degradation of ``(..., H, W, C)`` uint8 frames: ``matlab_imresize(frame, 1/scale)``;
    ``antialiasing=False``: the ``bicubic_noaa`` degradation (the kernel is not widened).

    Raises:
        ValueError: if ``H`` or ``W`` is not divisible by ``scale``.
    """
    h, w = _check_divisible(frames, scale)
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = np.stack([matlab_imresize(f, 1.0 / scale, antialiasing) for f in flat])
    return out.reshape(*frames.shape[:-3], h // scale, w // scale, frames.shape[-1])


def bicubic_noaa_downsample(frames: np.ndarray, scale: int) -> np.ndarray:
    """``bicubic_noaa`` of ``(..., H, W, C)`` uint8 frames: :func:`bicubic_downsample` without antialiasing.

    Each LR pixel is the Keys cubic (a = -0.5) interpolation of the 4x4 HR pixels around its centre
    (``scale * (x + 0.5) - 0.5``): a sampling, not an average, so frequencies above the LR Nyquist
    limit alias into the LR frame instead of being filtered out.
    """
    return bicubic_downsample(frames, scale, antialiasing=False)


def area_downsample(frames: np.ndarray, scale: int) -> np.ndarray:
    """``area`` degradation of ``(..., H, W, C)`` uint8 frames: the mean of each ``scale x scale``
    block (a box filter of width ``scale``, then every ``scale``-th pixel; OpenCV ``INTER_AREA``),
    computed in float64 and rounded once (half up) to uint8.

    Raises:
        ValueError: if ``H`` or ``W`` is not divisible by ``scale``.
    """
    h, w = _check_divisible(frames, scale)
    c = frames.shape[-1]
    blocks = frames.reshape(*frames.shape[:-3], h // scale, scale, w // scale, scale, c)
    mean = blocks.astype(np.float64).mean(axis=(-4, -2))
    return np.clip(np.floor(mean + 0.5), 0, 255).astype(np.uint8)


def gaussian_kernel_1d(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian of ``2*radius + 1`` taps (float64)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def blur_downsample(
    frames: np.ndarray, scale: int = 4, sigma: float | None = None, kernel_size: int = 13
) -> np.ndarray:
    """BD degradation of ``(..., H, W, C)`` uint8 frames: Gaussian blur, then every ``scale``-th pixel.

    As BasicSR's ``duf_downsample`` (the DUF/BasicVSR BD setting): a ``kernel_size`` square
    Gaussian of ``sigma = 0.4 * scale`` (1.6 for x4, 13x13), reflect-101 borders, and the
    pixels ``0, scale, 2*scale, ...`` kept in each dimension. Computed in float64 and rounded
    once to uint8.

    Raises:
        ValueError: if ``H`` or ``W`` is not divisible by ``scale``.
    """
    h, w = _check_divisible(frames, scale)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    g = gaussian_kernel_1d(0.4 * scale if sigma is None else sigma, kernel_size // 2)
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = []
    for frame in flat:
        blurred = cv2.sepFilter2D(
            frame.astype(np.float64), cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT_101
        )
        blurred = blurred.reshape(h, w, -1)[::scale, ::scale]
        out.append(np.clip(np.floor(blurred + 0.5), 0, 255).astype(np.uint8))
    return np.stack(out).reshape(*frames.shape[:-3], h // scale, w // scale, frames.shape[-1])


DEGRADATIONS = {
    "BI": bicubic_downsample,
    "BD": blur_downsample,
    "area": area_downsample,
    "bicubic_noaa": bicubic_noaa_downsample,
}
_BY_UPPER = {name.upper(): name for name in DEGRADATIONS}


def degradation_name(degradation: str) -> str:
    """The name of :data:`DEGRADATIONS` that ``degradation`` spells, in any case (``'bi'`` -> ``'BI'``).

    Raises:
        ValueError: naming the known degradations.
    """
    name = _BY_UPPER.get(str(degradation).upper())
    if name is None:
        raise ValueError(f"degradation must be one of {sorted(DEGRADATIONS)}, got {degradation!r}")
    return name


def degrade(frames: np.ndarray, scale: int, degradation: str = "BI") -> np.ndarray:
    """LR frames ``(..., H/scale, W/scale, C)`` uint8 by ``'BI'`` (MATLAB bicubic), ``'BD'`` (blur-down),
    ``'area'`` (block mean) or ``'bicubic_noaa'`` (bicubic without antialiasing); any case."""
    return DEGRADATIONS[degradation_name(degradation)](frames, scale)
