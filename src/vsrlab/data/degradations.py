"""Degradations that make low-resolution frames: BI (MATLAB bicubic, :mod:`vsrlab.ops.resize`) and
BD (blur + subsample, :func:`blur_downsample`).

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


def bicubic_downsample(frames: np.ndarray, scale: int) -> np.ndarray:
    """BI degradation of ``(..., H, W, C)`` uint8 frames: ``matlab_imresize(frame, 1/scale)``.

    Raises:
        ValueError: if ``H`` or ``W`` is not divisible by ``scale``.
    """
    h, w = frames.shape[-3:-1]
    if h % scale or w % scale:
        raise ValueError(f"frame size {h}x{w} is not divisible by the scale {scale}")
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = np.stack([matlab_imresize(f, 1.0 / scale) for f in flat])
    return out.reshape(*frames.shape[:-3], h // scale, w // scale, frames.shape[-1])


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
    h, w = frames.shape[-3:-1]
    if h % scale or w % scale:
        raise ValueError(f"frame size {h}x{w} is not divisible by the scale {scale}")
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


DEGRADATIONS = {"BI": bicubic_downsample, "BD": blur_downsample}


def degrade(frames: np.ndarray, scale: int, degradation: str = "BI") -> np.ndarray:
    """LR frames ``(..., H/scale, W/scale, C)`` uint8 by ``'BI'`` (MATLAB bicubic) or ``'BD'`` (blur-down)."""
    try:
        fn = DEGRADATIONS[degradation.upper()]
    except KeyError:
        raise ValueError(f"degradation must be one of {sorted(DEGRADATIONS)}, got {degradation!r}") from None
    return fn(frames, scale)
