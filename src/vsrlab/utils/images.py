"""Conversions between model tensors and 8-bit images, and saving image grids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor


def to_uint8_hwc(x: Tensor) -> np.ndarray:
    """``(..., C, H, W)`` float tensor in [0, 1] to ``(..., H, W, C)`` uint8 (clamped, rounded)."""
    x = x.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu()
    return x.movedim(-3, -1).numpy()


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """``(..., H, W, C)`` uint8 frames to a ``(..., C, H, W)`` float32 tensor in [0, 1]."""
    out = np.ascontiguousarray(np.moveaxis(frames, -1, -3), dtype=np.float32)
    out *= 1.0 / 255.0
    return torch.from_numpy(out)


def save_rgb(path: str | Path, img: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image (PNG by extension); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path}")
    return path


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Concatenate equally tall ``(H, W, 3)`` uint8 images horizontally with white gaps."""
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, img in enumerate(images):
        if img.shape[0] != h:
            raise ValueError(f"image {i} is {img.shape[0]} pixels tall, expected {h}")
        parts += [spacer, img] if i else [img]
    return np.concatenate(parts, axis=1)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """``(H, W, 2)`` displacement ``(x, y)`` to an ``(H, W, 3)`` uint8 image in the Middlebury style:
    hue = direction, saturation = length relative to ``max_magnitude`` (default: the largest in the
    field), so that no motion is white (:func:`vsrlab.utils.figures.panel_figure` draws the wheel)."""
    from matplotlib.colors import hsv_to_rgb

    x, y = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    magnitude = np.hypot(x, y)
    top = float(max_magnitude if max_magnitude is not None else magnitude.max())
    saturation = np.clip(magnitude / top, 0, 1) if top > 0 else np.zeros_like(x)
    hsv = np.stack([(np.arctan2(y, x) / (2 * np.pi)) % 1.0, saturation, np.ones_like(x)], axis=-1)
    return np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)


def heatmap_rgb(values: np.ndarray, vmax: float | None = None, cmap: str = "viridis") -> np.ndarray:
    """``(H, W)`` non-negative values to an ``(H, W, 3)`` uint8 colour map scaled to ``[0, vmax]``."""
    from matplotlib import colormaps

    top = float(vmax if vmax is not None else values.max())
    scaled = np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values, dtype=np.float64)
    return np.round(colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)


def enlarge(img: np.ndarray, min_side: int = 128) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor until the shorter side is >= ``min_side``."""
    factor = max(1, -(-min_side // min(img.shape[:2])))
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)
