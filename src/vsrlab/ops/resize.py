"""MATLAB's ``imresize`` with bicubic interpolation and antialiasing, for numpy images and torch
tensors: BI degradation, bicubic up-sampling baselines and the bicubic skip of some networks all
use it (Keys a = -0.5, the kernel widened by the scale when shrinking, MATLAB's border handling)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from vsrlab.ops.tensor_cache import tensor_cache


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """The ``(out_length, in_length)`` float64 matrix of MATLAB's 1-D bicubic resize.

    Mirrors MATLAB ``contributions``: output pixel ``u`` (1-based) is centred at input
    coordinate ``u/scale + 0.5*(1 - 1/scale)``; out-of-range taps are mirrored
    (``[1..n, n..1]`` repeated), which here adds their weight to the mirrored pixel.
    """
    kernel_width = 4.0
    shrink_aa = scale < 1 and antialiasing
    if shrink_aa:
        kernel_width /= scale
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    distance = u[:, None] - indices
    weights = scale * cubic_kernel(distance * scale) if shrink_aa else cubic_kernel(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    period = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    source = period[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), source.ravel()), weights.ravel())
    return matrix


def _output_size(length: int, scale: float) -> int:
    return int(math.ceil(length * scale))


def matlab_imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of an ``(H, W)`` or ``(H, W, C)`` array.

    Args:
        img: uint8 in [0, 255] or float in [0, 1] (any range works for floats).
        scale: the same factor for both dimensions (1/4 for x4 BI, 4 for bicubic upsampling).
        antialiasing: widen the kernel when shrinking (MATLAB's default).

    Returns:
        Array of size ``ceil(H*scale) x ceil(W*scale)`` and the input's dtype; uint8 results are
        rounded (half up) and saturated; floats are not clipped.
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise ValueError(
            f"matlab_imresize expects an (H, W) or (H, W, C) numpy array, got "
            f"{type(img).__name__} {getattr(img, 'shape', '')}"
        )
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    is_uint8 = img.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(img.dtype, np.floating)):
        raise ValueError(f"matlab_imresize supports uint8 or float images, got dtype {img.dtype}")
    h, w = img.shape[:2]
    wh = resize_matrix(h, _output_size(h, scale), float(scale), antialiasing)
    ww = resize_matrix(w, _output_size(w, scale), float(scale), antialiasing)
    out = np.tensordot(wh, img.astype(np.float64), axes=(1, 0))  # rows first
    out = np.moveaxis(np.tensordot(ww, out, axes=(1, 1)), 0, 1)
    if is_uint8:
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return out.astype(img.dtype)


@tensor_cache(64)
def _resize_matrix_tensor(
    in_length: int, scale: float, antialiasing: bool, device: torch.device, dtype: torch.dtype
) -> Tensor:
    matrix = resize_matrix(in_length, _output_size(in_length, scale), scale, antialiasing)
    # a normal tensor even when first asked for under inference mode (an evaluation): the cache serves
    # later calls whose result autograd records (training, LAM), which an inference tensor would break
    with torch.inference_mode(False):
        return torch.from_numpy(matrix).to(device=device, dtype=dtype)


def matlab_imresize_tensor(x: Tensor, scale: float, antialiasing: bool = True) -> Tensor:
    """:func:`matlab_imresize` for float tensors ``(..., H, W)`` (no rounding), differentiable.

    Computed in float32 (float64 for float64 input) with autocast off, whatever the input's dtype:
    the bicubic skip of a network and the bicubic baseline keep full precision under mixed precision.
    The resize matrices are cached per size, scale, device and dtype.
    """
    h, w = x.shape[-2:]
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    wh = _resize_matrix_tensor(h, float(scale), antialiasing, x.device, dtype)
    ww = _resize_matrix_tensor(w, float(scale), antialiasing, x.device, dtype)
    with torch.autocast(x.device.type, enabled=False):
        return torch.matmul(torch.matmul(wh, x.to(dtype)), ww.transpose(0, 1))
