"""Losses for VSR training."""

from vsrlab.losses.offset_fidelity import OffsetFidelityLoss, OffsetFidelityTerm, offset_fidelity_loss
from vsrlab.losses.pixel import CharbonnierLoss, L1Loss, MSELoss, PixelLoss

__all__ = [
    "CharbonnierLoss",
    "L1Loss",
    "MSELoss",
    "OffsetFidelityLoss",
    "OffsetFidelityTerm",
    "PixelLoss",
    "offset_fidelity_loss",
]
