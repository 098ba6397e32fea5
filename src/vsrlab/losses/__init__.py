"""Losses for VSR training."""

from vsrlab.losses.build import build_loss_terms
from vsrlab.losses.offset_fidelity import OffsetFidelityLoss, OffsetFidelityTerm, offset_fidelity_loss
from vsrlab.losses.pixel import CharbonnierLoss, L1Loss, MSELoss, PixelLoss
from vsrlab.losses.terms import LossTerm, StepOutputs

__all__ = [
    "CharbonnierLoss",
    "L1Loss",
    "LossTerm",
    "MSELoss",
    "OffsetFidelityLoss",
    "OffsetFidelityTerm",
    "PixelLoss",
    "StepOutputs",
    "build_loss_terms",
    "offset_fidelity_loss",
]
