"""Losses for VSR training."""

from vsrlab.losses.offset_fidelity import OffsetFidelityLoss, offset_fidelity_loss
from vsrlab.losses.pixel import CharbonnierLoss, L1Loss, MSELoss, PixelLoss

__all__ = ["CharbonnierLoss", "L1Loss", "MSELoss", "OffsetFidelityLoss", "PixelLoss", "offset_fidelity_loss"]
