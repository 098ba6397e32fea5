"""PSNR and SSIM with the conventions of the VSR literature.

- Inputs are ``(H, W, C)`` uint8 RGB arrays (scores are computed on outputs rounded to uint8).
- The Y channel is MATLAB's ``rgb2ycbcr`` luma on [0, 255]:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (not full-range BT.601), kept unrounded.
- SSIM is Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, constants ``(0.01*255)^2`` and
  ``(0.03*255)^2``, 'valid' filtering, computed per channel on [0, 255] and averaged.
- ``crop_border`` pixels are removed from every side before scoring.
"""

from __future__ import annotations

import cv2
import numpy as np

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """MATLAB luma of an ``(H, W, 3)`` RGB image on [0, 255]; returns ``(H, W)`` float64."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an (H, W, 3) RGB image, got shape {img.shape}")
    return img.astype(np.float64) @ _Y_WEIGHTS + 16.0


def prepare_images(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 arrays the scores compare: ``crop_border`` removed, MATLAB's Y channel when
    ``test_y_channel`` (``(H', W')``), else all channels (``(H', W', C)`` or ``(H', W')``)."""
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {img2.shape}")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {img.shape}")
    if crop_border < 0 or 2 * crop_border >= min(img.shape[:2]):
        raise ValueError(f"crop_border={crop_border} is invalid for images of size {img.shape[:2]}")
    if test_y_channel:
        a, b = rgb_to_y(img), rgb_to_y(img2)
    else:
        a, b = img.astype(np.float64), img2.astype(np.float64)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def calculate_psnr(
    img: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False
) -> float:
    """PSNR in dB on [0, 255]; ``inf`` for identical images.

    Args:
        img, img2: ``(H, W, C)`` uint8 RGB images (or ``(H, W)`` grey when ``test_y_channel`` is False).
        crop_border: pixels removed from each side.
        test_y_channel: score MATLAB's Y channel instead of all channels.
    """
    a, b = prepare_images(img, img2, crop_border, test_y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _ssim_map_single(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of one channel, ``(H - 10, W - 10)`` ('valid' filtering)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T
    valid = (slice(5, -5), slice(5, -5))
    mu1 = cv2.filter2D(a, -1, window)[valid]
    mu2 = cv2.filter2D(b, -1, window)[valid]
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = cv2.filter2D(a * a, -1, window)[valid] - mu1_sq
    sigma2_sq = cv2.filter2D(b * b, -1, window)[valid] - mu2_sq
    sigma12 = cv2.filter2D(a * b, -1, window)[valid] - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    return float(_ssim_map_single(a, b).mean())


def _ssim_inputs(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    a, b = prepare_images(img, img2, crop_border, test_y_channel)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {a.shape[:2]}")
    return a, b


def calculate_ssim(
    img: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False
) -> float:
    """SSIM (Wang et al. 2004) on [0, 255], per channel then averaged; arguments as :func:`calculate_psnr`.

    Raises:
        ValueError: for images smaller than the 11x11 window after cropping.
    """
    a, b = _ssim_inputs(img, img2, crop_border, test_y_channel)
    if a.ndim == 2:
        return _ssim_single(a, b)
    return float(np.mean([_ssim_single(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def ssim_map(
    img: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False
) -> np.ndarray:
    """The per-pixel SSIM of :func:`calculate_ssim` (same window, constants and arguments), averaged
    over channels: ``(H', W')`` float64 for the ``(H' + 10, W' + 10)`` images left after cropping
    (the 11x11 window's 'valid' positions: pixel ``(i, j)`` of the map is the window centred on pixel
    ``(i + 5, j + 5)``). Its mean is :func:`calculate_ssim` up to rounding.

    Raises:
        ValueError: for images smaller than the 11x11 window after cropping.
    """
    a, b = _ssim_inputs(img, img2, crop_border, test_y_channel)
    if a.ndim == 2:
        return _ssim_map_single(a, b)
    return np.mean([_ssim_map_single(a[..., c], b[..., c]) for c in range(a.shape[2])], axis=0)
