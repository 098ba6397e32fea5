"""Pictures of a LAM result, as the LAM reference draws them: the attribution map in the ``seismic``
colour map (``value * 0.5 + 0.5``, so 0 is white and 1 deep red) enlarged by the scale with nearest
neighbours, its KDE-smoothed version, each blended with the bicubic-upsampled input (``alpha`` = weight of
the input), and the output with the analysed window drawn on it. For video: one panel per input frame on a
common colour scale, each with its share of the total attribution printed on it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy.signal import fftconvolve

from vsrlab.analysis.lam import LAMResult
from vsrlab.utils.images import save_rgb, side_by_side, to_uint8_hwc

WINDOW_COLOUR = (255, 0, 0)


def kde_density(weights: np.ndarray) -> np.ndarray:
    """The weighted Gaussian KDE of the pixel grid evaluated at every pixel, divided by its maximum: what
    the reference gets from ``scipy.stats.gaussian_kde(pixels, weights=map)`` (Scott's bandwidth on the
    weighted covariance), computed as one convolution of the weights with that Gaussian (exact, as the
    kernel covers every pixel pair) instead of an ``O((hw)^2)`` evaluation. ``(h, w)`` -> ``(h, w)``."""
    w = np.asarray(weights, dtype=np.float64)
    h, wd = w.shape
    total = w.sum()
    if total <= 0:
        raise ValueError("kde_density needs a map with a positive sum")
    p = w.ravel() / total
    ys, xs = np.mgrid[0:h, 0:wd]
    points = np.stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    covariance = np.cov(points, aweights=p)
    neff = 1.0 / np.sum(p**2)
    covariance = covariance * neff ** (-2.0 / 6.0)  # Scott's factor n_eff^(-1/(d+4)), squared, d = 2
    dy, dx = np.mgrid[-(h - 1) : h, -(wd - 1) : wd].astype(np.float64)
    d = np.stack([dx.ravel(), dy.ravel()])
    inverse = np.linalg.inv(covariance)
    kernel = np.exp(-0.5 * np.sum(d * (inverse @ d), axis=0)).reshape(dy.shape)
    density = fftconvolve(w, kernel, mode="same")
    return density / density.max()


def seismic_rgb(values: np.ndarray, zoom: int, interpolation: int = cv2.INTER_NEAREST) -> np.ndarray:
    """``(h, w)`` values in [0, 1] -> ``(zoom*h, zoom*w, 3)`` uint8 in the reference's colouring."""
    from matplotlib import colormaps

    rgb = (255 * colormaps["seismic"](np.asarray(values) * 0.5 + 0.5)[..., :3]).astype(np.uint8)
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w * zoom, h * zoom), interpolation=interpolation)


def blend(picture: np.ndarray, lq_frame: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``picture * (1 - alpha) + bicubic-upsampled LR * alpha`` (uint8 HWC)."""
    h, w = picture.shape[:2]
    upsampled = cv2.resize(lq_frame, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    return np.clip(picture * (1.0 - alpha) + upsampled * alpha, 0, 255).astype(np.uint8)


def draw_window(image: np.ndarray, row: int, col: int, size: int) -> np.ndarray:
    """A copy of ``image`` with the ``size`` square at ``(row, col)`` outlined."""
    out = np.ascontiguousarray(image.copy())
    cv2.rectangle(out, (col, row), (col + size, row + size), WINDOW_COLOUR, 2)
    return out


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    scale = max(0.35, image.shape[1] / 400)
    cv2.putText(out, text, (4, int(14 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3)
    cv2.putText(out, text, (4, int(14 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return out


def lam_pictures(result: LAMResult, lq: np.ndarray, alpha: float = 0.5) -> dict[str, np.ndarray]:
    """The pictures of ``result`` for the input ``lq`` (``(h, w, 3)`` or ``(T, h, w, 3)`` uint8).

    Returns ``{"lam": ..., "frames": ...}``: ``lam`` = output with window | map | map blended with the
    input | KDE blended with the input, for the input frame with the largest share; ``frames`` (video
    only) = one blended panel per input frame on the joint colour scale, labelled with its share.
    """
    frames = lq if lq.ndim == 4 else lq[None]
    maps = result.attribution_map.numpy()
    maps = maps if maps.ndim == 3 else maps[None]
    output = to_uint8_hwc(result.output.clamp(0, 1))
    zoom = output.shape[0] // frames.shape[1]
    top = int(np.argmax(result.frame_shares.numpy()))
    saliency = seismic_rgb(maps[top], zoom)
    kde = seismic_rgb(kde_density(maps[top]), zoom, cv2.INTER_CUBIC) if maps[top].sum() > 0 else saliency
    lam = side_by_side(
        draw_window(output, result.row, result.col, result.window_size),
        saliency,
        blend(saliency, frames[top], alpha),
        blend(kde, frames[top], alpha),
    )
    pictures = {"lam": lam}
    if len(frames) > 1:
        shares = result.frame_shares.numpy()
        panels = [
            _label(blend(seismic_rgb(maps[t], zoom), frames[t], alpha), f"t={t}  {100 * shares[t]:.1f}%")
            for t in range(len(frames))
        ]
        pictures["frames"] = side_by_side(*panels)
    return pictures


def save_lam_pictures(
    result: LAMResult, lq: np.ndarray, out_dir: str | Path, alpha: float = 0.5
) -> list[Path]:
    """Write :func:`lam_pictures` as ``lam.png`` (and ``lam_frames.png``) into ``out_dir``."""
    names = {"lam": "lam.png", "frames": "lam_frames.png"}
    return [save_rgb(Path(out_dir) / names[k], img) for k, img in lam_pictures(result, lq, alpha).items()]
