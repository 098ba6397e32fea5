"""Losses for VSR training."""

from vsrlab.losses.pixel import CharbonnierLoss

__all__ = ["CharbonnierLoss"]
