"""Pixel losses."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor


class CharbonnierLoss(nn.Module):
    """``loss_weight * reduce(sqrt((pred - target)^2 + eps))``, a differentiable L1 (Charbonnier 1994;
    used by EDVR, BasicVSR; LapSRN Eq. 4).

    Args:
        loss_weight: multiplier.
        reduction: ``'mean'`` or ``'sum'`` over all elements.
        eps: added to the squared difference (BasicSR's default 1e-12).
    """

    def __init__(self, loss_weight: float = 1.0, reduction: Literal["mean", "sum"] = "mean", eps: float = 1e-12) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.loss_weight, self.reduction, self.eps = loss_weight, reduction, eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred`` and ``target`` of the same shape -> scalar."""
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        loss = torch.sqrt((pred - target) ** 2 + self.eps)
        return self.loss_weight * (loss.mean() if self.reduction == "mean" else loss.sum())
