"""A training progress bar in optimizer steps of ``trainer.max_steps``, one bar for the whole run.

Lightning's bar counts the batches of an epoch; vsrlab's training streams clips, so an epoch is an
arbitrary unit (its bar read ``Epoch 0/-2 ... v_num: ny_0``). This bar reads ``step 120/2000`` from
the first step to the last, starts where a resumed run starts, and leaves out the logger version.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """:class:`~pytorch_lightning.callbacks.RichProgressBar` over ``trainer.global_step`` of
    ``trainer.max_steps`` (no total when training is bounded by epochs only)."""

    @property
    def total_train_batches(self) -> int | float:
        steps = self.trainer.max_steps
        return steps if steps > 0 else float("inf")

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'step':{len(self.validation_description)}}"

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.train_progress_bar_id is None:  # one bar for every epoch
            super().on_train_epoch_start(trainer, pl_module)
            self._update(self.train_progress_bar_id, int(trainer.global_step))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, int(trainer.global_step))
        self._update_metrics(trainer, pl_module)
        self.refresh()
