"""``status.json`` of a run directory, kept current while training (read by ``vsrlab-report``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from vsrlab.run import read_status, write_status


class StatusFile(pl.Callback):
    """Rewrite ``<default_root_dir>/status.json`` (rank 0) every ``every_n_steps`` training steps
    with the state ``running``, the step and ``max_steps``; each fit session appends the step it
    started from to ``sessions`` (0 for a fresh run, the checkpoint's step for a resumed one; a fit
    resumed with nothing left to train, e.g. a run pre-empted in its final test, is a session too)."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        self.every_n_steps = max(1, int(every_n_steps))
        self._session_recorded = False

    def _write(self, trainer: pl.Trainer, **fields: Any) -> None:
        if trainer.is_global_zero and not trainer.fast_dev_run:
            write_status(
                trainer.default_root_dir,
                "running",
                step=int(trainer.global_step),
                max_steps=int(trainer.max_steps),
                **fields,
            )

    def _record_session(self, trainer: pl.Trainer) -> None:
        previous = read_status(trainer.default_root_dir)
        self._write(
            trainer, sessions=[*previous.get("sessions", []), {"start_step": int(trainer.global_step)}]
        )
        self._session_recorded = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._session_recorded = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record_session(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._session_recorded:
            self._record_session(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._write(trainer)
