"""Logging of deformable offsets during training, with a warning on offset overflow.

Chan et al. (AAAI 2021, Sec. 4.3) trace the instability of deformable alignment to offsets that
grow far beyond any plausible motion ("offset overflow"); BasicSR warns when the mean absolute
offset of a DCN exceeds 50. This callback logs that mean for every
:class:`vsrlab.ops.DeformableAlignment` and warns, naming the module, when it crosses the threshold.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_warn

from vsrlab.ops import alignment_modules

log = logging.getLogger(__name__)


class OffsetMonitor(pl.Callback):
    """Log ``offsets/<module>/abs_mean`` (last call of each alignment module) every training step
    that Lightning logs, and warn when a module's mean absolute offset exceeds ``threshold``.

    Args:
        threshold: pixels; 50 as BasicSR's warning.
        warn_every_n_steps: repeat the warning for a module that stays above the threshold at
            most this often.
    """

    def __init__(self, threshold: float = 50.0, warn_every_n_steps: int = 500) -> None:
        super().__init__()
        self.threshold, self.warn_every_n_steps = threshold, warn_every_n_steps
        self._last_warned: dict[str, int] = {}
        self.last_values: dict[str, float] = {}

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        net = getattr(pl_module, "net", pl_module)
        step = trainer.global_step
        values = {name: m.offset_abs_mean for name, m in alignment_modules(net)}
        self.last_values = {k: v for k, v in values.items() if v is not None}
        if not self.last_values:
            return
        pl_module.log_dict(
            {f"offsets/{name}/abs_mean": v for name, v in self.last_values.items()},
            on_step=True,
            on_epoch=False,
        )
        pl_module.log("offsets/abs_mean_max", max(self.last_values.values()), on_step=True, on_epoch=False)
        for name, value in self.last_values.items():
            if value > self.threshold:
                last = self._last_warned.get(name)
                if last is None or step - last >= self.warn_every_n_steps:
                    self._last_warned[name] = step
                    rank_zero_warn(
                        f"offset overflow at step {step}: mean |offset| of {name} is {value:.1f} px, "
                        f"above {self.threshold:g}; consider the offset-fidelity loss "
                        f"(model.offset_fidelity) or a lower learning rate"
                    )
