"""Offset-fidelity loss (Chan et al., "Understanding Deformable Alignment in VSR", AAAI 2021, Eq. 4-5).

Deformable alignment trained by the SR loss alone can drift into offsets that have nothing to
do with motion (offset overflow, Sec. 4.3); the loss pulls every offset towards the optical flow
wherever it strays by more than a threshold ``t``:

    L = lambda * sum_{n, k}  mean_{c, h, w}  1[|o_k - f| > t] * |o_k - f|

with ``o_k`` the k-th ``(dy, dx)`` offset pair and ``f`` the flow flipped to ``(y, x)``. The
argument layout and the normalisation (mean over the ``(2, h, w)`` of each offset pair, sum over
pairs and batch) follow the authors' released implementation, so its ``lambda`` values carry over.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor


def offset_fidelity_loss(offset: Tensor, flow: Tensor, threshold: float = 10.0) -> Tensor:
    """Unweighted Eq. 5.

    Args:
        offset: ``(n, 2K, h, w)`` offsets in ``(y, x)`` pairs (DCN layout, K = G * N).
        flow: ``(n, 2, h, w)`` optical flow in ``(x, y)`` order, in the offsets' pixel units.
        threshold: ``t``; differences at or below it cost nothing.

    Returns:
        Scalar loss.
    """
    n, c, h, w = offset.shape
    if c % 2 or flow.shape != (n, 2, h, w):
        raise ValueError(
            f"offset (n, 2K, h, w) and flow (n, 2, h, w) expected, got {tuple(offset.shape)} and "
            f"{tuple(flow.shape)}"
        )
    diff = (offset.view(n, c // 2, 2, h, w) - flow.flip(1).unsqueeze(1)).abs()
    masked = torch.where(diff > threshold, diff, torch.zeros_like(diff))
    return masked.mean(dim=(2, 3, 4)).sum()


class OffsetFidelityLoss(nn.Module):
    """``loss_weight * offset_fidelity_loss(offset, flow, threshold)``; see :func:`offset_fidelity_loss`.

    Args:
        loss_weight: lambda of Eq. 5.
        threshold: t of Eq. 5, in pixels.
    """

    def __init__(self, loss_weight: float = 1.0, threshold: float = 10.0) -> None:
        super().__init__()
        self.loss_weight, self.threshold = loss_weight, threshold

    def forward(self, offset: Tensor, flow: Tensor) -> Tensor:
        return self.loss_weight * offset_fidelity_loss(offset, flow, self.threshold)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, threshold={self.threshold}"
