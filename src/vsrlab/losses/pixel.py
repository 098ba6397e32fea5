"""Pixel losses: one weighted, reduced element-wise penalty, three penalties (BasicSR names)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.utils.precision import at_least_float32

Reduction = Literal["mean", "sum"]


class PixelLoss(nn.Module):
    """``loss_weight * reduce(penalty(pred - target))``; subclasses define :meth:`penalty`.

    Args:
        loss_weight: multiplier.
        reduction: ``'mean'`` or ``'sum'`` over all elements.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.loss_weight, self.reduction = loss_weight, reduction

    def penalty(self, diff: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred`` and ``target`` of the same shape -> scalar."""
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        loss = self.penalty(at_least_float32(pred) - at_least_float32(target))  # float32 under autocast
        return self.loss_weight * (loss.mean() if self.reduction == "mean" else loss.sum())


class L1Loss(PixelLoss):
    """``|pred - target|``."""

    def penalty(self, diff: Tensor) -> Tensor:
        return diff.abs()


class MSELoss(PixelLoss):
    """``(pred - target)^2`` (TDAN's loss, and its aligned-LR auxiliary loss)."""

    def penalty(self, diff: Tensor) -> Tensor:
        return diff.square()


class CharbonnierLoss(PixelLoss):
    """``sqrt((pred - target)^2 + eps)``, a differentiable L1 (Charbonnier 1994; used by EDVR,
    BasicVSR; LapSRN Eq. 4).

    Args:
        loss_weight, reduction: as :class:`PixelLoss`.
        eps: added to the squared difference (BasicSR's default 1e-12).
    """

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean", eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def penalty(self, diff: Tensor) -> Tensor:
        return torch.sqrt(diff.square() + self.eps)
