"""Cosine annealing with restarts of given periods and weights (SGDR as EDVR and BasicVSR use it)."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing in consecutive periods, each restarting at ``weight * base_lr``.

    Loshchilov & Hutter, "SGDR", ICLR 2017, Eq. 5, with per-restart periods and weights as in
    BasicSR: within period ``i`` of length ``T_i`` starting at step ``S_i``,

        lr(step) = eta_min + w_i * 0.5 * (base_lr - eta_min) * (1 + cos(pi * (step - S_i) / T_i)).

    After the last period the learning rate stays at ``eta_min``. Stepped once per iteration.

    Args:
        optimizer: the optimizer.
        periods: length of each period in iterations (e.g. ``[150000] * 4`` for EDVR).
        restart_weights: ``w_i`` per period (e.g. ``[1, 0.5, 0.5, 0.5]``).
        eta_min: learning rate at the end of each period.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        periods: Sequence[int],
        restart_weights: Sequence[float] = (1.0,),
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if len(periods) != len(restart_weights):
            raise ValueError(
                f"periods ({len(periods)}) and restart_weights ({len(restart_weights)}) "
                "must have the same length"
            )
        if any(p <= 0 for p in periods):
            raise ValueError(f"periods must be positive, got {list(periods)}")
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in restart_weights]
        self.eta_min = eta_min
        self.starts = [0, *itertools.accumulate(self.periods)]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        i = bisect.bisect_right(self.starts, step) - 1
        if i >= len(self.periods):
            return [self.eta_min for _ in self.base_lrs]
        progress = (step - self.starts[i]) / self.periods[i]
        factor = self.restart_weights[i] * 0.5 * (1 + math.cos(math.pi * progress))
        return [self.eta_min + factor * (base - self.eta_min) for base in self.base_lrs]
