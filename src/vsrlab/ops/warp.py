"""Spatial warping: sampling a feature map at arbitrary pixel positions.

Every alignment in vsrlab reduces to :func:`sample_at`: flow-based alignment samples once per
pixel, a deformable convolution samples N times per pixel (see :mod:`vsrlab.ops.deform_conv`).

Coordinate convention: pixel ``(x, y)`` is the centre of column ``x`` and row ``y``; flows are
``(B, 2, H, W)`` tensors with channel 0 the horizontal (x) and channel 1 the vertical (y)
displacement, as optical-flow networks such as SPyNet produce them.

Precision: sampling positions (base grid + flow or offsets) and their normalisation are computed
in :func:`position_dtype` (float32, or float64 for float64 inputs) whatever the autocast dtype or
the dtype of the flow: bfloat16 resolves a position near 64 px to 0.25 px only, float16 one near
256 px to 0.25 px. The sampled values come back in the dtype of the sampled tensor.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Interpolation = Literal["bilinear", "nearest"]
PaddingMode = Literal["zeros", "border"]


def position_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype sampling positions are computed in: float32, or float64 if any input is float64."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def pixel_to_grid(x: Tensor, y: Tensor, height: int, width: int) -> Tensor:
    """Absolute pixel coordinates to the normalised ``[-1, 1]`` grid of ``grid_sample``.

    Uses the ``align_corners=False`` normalisation, which is defined for sizes of 1 too; computed in
    :func:`position_dtype` of the coordinates.

    Args:
        x, y: pixel coordinates of equal shape ``(...)``.
        height, width: size of the image that will be sampled.

    Returns:
        ``(..., 2)`` grid in ``(x, y)`` order.
    """
    dtype = position_dtype(x, y)
    gx = (2.0 * x.to(dtype) + 1.0) / width - 1.0
    gy = (2.0 * y.to(dtype) + 1.0) / height - 1.0
    return torch.stack((gx, gy), dim=-1)


def grid_sample_exact(x: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """``grid_sample`` (``align_corners=False``) with ``grid`` kept in :func:`position_dtype` (never
    rounded to a lower-precision ``x`` or autocast dtype); returns ``x``'s dtype.

    ``x`` is read in the grid's dtype (a bfloat16/float16 feature map is widened for the sampling).
    """
    dtype = position_dtype(x, grid)
    out = F.grid_sample(
        x.to(dtype), grid.to(dtype), mode=mode, padding_mode=padding_mode, align_corners=False
    )
    return out.to(x.dtype)


def sample_at(
    x: Tensor,
    px: Tensor,
    py: Tensor,
    interpolation: Interpolation = "bilinear",
    padding_mode: PaddingMode = "zeros",
) -> Tensor:
    """Sample ``x`` at pixel positions ``(px, py)``.

    With bilinear interpolation and zero padding a sample is the bilinear blend of the four
    neighbouring pixels, those outside the image counting as zero (the sampling of Eq. 1 in
    Dai et al., "Deformable Convolutional Networks", 2017).

    Args:
        x: ``(B, C, H, W)`` image or feature map.
        px, py: ``(B, Ho, Wo)`` horizontal and vertical pixel coordinates.

    Returns:
        ``(B, C, Ho, Wo)`` samples.
    """
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    if padding_mode not in ("zeros", "border"):
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    return grid_sample_exact(x, pixel_to_grid(px, py, x.shape[-2], x.shape[-1]), interpolation, padding_mode)


def base_grid(height: int, width: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates ``(x, y)`` of every pixel, each ``(H, W)``, on ``like``'s device in
    :func:`position_dtype` of ``like``."""
    dtype = position_dtype(like)
    ys = torch.arange(height, dtype=dtype, device=like.device)
    xs = torch.arange(width, dtype=dtype, device=like.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gx, gy


def flow_warp(
    x: Tensor,
    flow: Tensor,
    interpolation: Interpolation = "bilinear",
    padding_mode: PaddingMode = "zeros",
) -> Tensor:
    """Backward-warp ``x`` with ``flow``: ``out(p) = x(p + flow(p))``.

    To align a neighbour frame to a reference frame, ``flow`` is the flow from the reference to
    the neighbour: pixel ``p`` of the reference shows the same point as ``p + flow(p)`` of the
    neighbour.

    Args:
        x: ``(B, C, H, W)`` frame or feature map to warp.
        flow: ``(B, 2, H, W)`` displacement in pixels, channel 0 = x, channel 1 = y.
        interpolation: ``'bilinear'`` or ``'nearest'``.
        padding_mode: ``'zeros'`` (outside is 0) or ``'border'`` (outside repeats the edge).

    Returns:
        ``(B, C, H, W)`` warped tensor.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"flow_warp expects x (B, C, H, W) and flow (B, 2, H, W); got {tuple(x.shape)} "
            f"and {tuple(flow.shape)}"
        )
    if flow.shape[0] != x.shape[0] or flow.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"flow {tuple(flow.shape)} does not match x {tuple(x.shape)} in batch or size")
    gx, gy = base_grid(x.shape[-2], x.shape[-1], flow)
    px, py = gx + flow[:, 0].to(gx.dtype), gy + flow[:, 1].to(gy.dtype)
    return sample_at(x, px, py, interpolation, padding_mode)


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a flow field ``(B, 2, H, W)`` to ``size`` ``(h, w)``, rescaling its vectors to the
    new pixels."""
    h, w = size
    if (h, w) == tuple(flow.shape[-2:]):
        return flow
    scale = flow.new_tensor([w / flow.shape[-1], h / flow.shape[-2]]).view(1, 2, 1, 1)
    return F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False) * scale
