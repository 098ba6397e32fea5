"""Patch alignment (Shi et al., "Rethinking Alignment in Video Super-Resolution Transformers",
NeurIPS 2022, Sec. 4 and Fig. 5).

A frame is cut into ``patch_size`` x ``patch_size`` patches on the grid of the attention
windows (starting at pixel ``(0, 0)``); each patch moves rigidly by the mean of the optical flow
over the patch, so pixels keep their relative positions inside a patch and the attention window
that later sees the patch sees it whole. With nearest sampling (the paper's choice) the patch
moves by the mean rounded to whole pixels and no value is resampled; the bilinear variant
resamples every pixel by the same sub-pixel mean. Applied to LR frames it is the paper's "image
position" variant, to features its "feature position" variant (Table 3): the operator is the
same, the architectures decide where it runs.

Conventions as :func:`vsrlab.ops.flow_warp`: ``flow`` ``(B, 2, H, W)`` in pixels, channel 0 = x,
from the frame being aligned to (its pixel ``p`` shows the point at ``p + flow(p)`` of) ``x``.
Outside ``x`` samples are zero. Equal to the official ``flow_warp_avg_patch`` for the same
inputs, except where a patch mean lands exactly on .5 px, which the reference's normalised-grid
round trip rounds either way.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from vsrlab.ops.warp import Interpolation, flow_warp


def patch_mean_flow(flow: Tensor, patch_size: int = 8) -> Tensor:
    """The mean flow of each ``patch_size`` patch, broadcast to its pixels.

    The flow is reflect-padded at the right and bottom to a multiple of ``patch_size`` first,
    so border patches average over mirrored flow as in the reference.

    Args:
        flow: ``(B, 2, H, W)``.
        patch_size: side of the square patches.

    Returns:
        ``(B, 2, H, W)``, constant on each patch.
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    h, w = flow.shape[-2:]
    pad_h, pad_w = -h % patch_size, -w % patch_size
    if pad_h >= h or pad_w >= w:
        raise ValueError(
            f"a {h}x{w} flow cannot be reflect-padded to a multiple of patch_size={patch_size}; "
            f"frames must be larger than {patch_size // 2} pixels per side"
        )
    padded = F.pad(flow, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else flow
    means = F.avg_pool2d(padded, patch_size)
    return means.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)[..., :h, :w]


def patch_align(
    x: Tensor, flow: Tensor, patch_size: int = 8, interpolation: Interpolation = "nearest"
) -> Tensor:
    """Move every patch of ``x`` by the mean flow of the patch.

    Args:
        x: ``(B, C, H, W)`` frame or feature map.
        flow: ``(B, 2, H, W)`` flow (see the module docstring).
        patch_size: side of the patches; the attention window's spatial size.
        interpolation: ``'nearest'`` (the paper's patch alignment: whole-pixel moves) or
            ``'bilinear'`` (the "BI" rows of Table 3).

    Returns:
        ``(B, C, H, W)``.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[0] != x.shape[0] or flow.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"patch_align expects x (B, C, H, W) and flow (B, 2, H, W) of the same batch and size; "
            f"got {tuple(x.shape)} and {tuple(flow.shape)}"
        )
    return flow_warp(x, patch_mean_flow(flow, patch_size), interpolation=interpolation)
