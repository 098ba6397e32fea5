"""Learning-rate schedules of the VSR training recipes."""

from vsrlab.optim.lr_scheduler import CosineAnnealingRestartLR

__all__ = ["CosineAnnealingRestartLR"]
