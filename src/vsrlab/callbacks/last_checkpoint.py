"""``checkpoints/last.ckpt``, the state a relaunched or requeued run resumes from, kept current."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.trainer.states import TrainerFn

from vsrlab.run.checkpoints import checkpoint_dir
from vsrlab.run.layout import LAST_CHECKPOINT


class LastCheckpoint(Checkpoint):
    """Write ``<checkpoint dir>/last.ckpt`` after every validation of a fit and at its end.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes it only when the monitored metric
    improved, so a run resumed after a validation that did not improve would silently go back to
    an older step. Every DDP rank takes part (Lightning's barrier; rank 0 writes), the write is
    atomic and the replaced file is kept as ``last.previous.ckpt``
    (:class:`vsrlab.utils.checkpoint.AtomicCheckpointIO`). The pre-emption callback writes the same
    file when a signal stops the run.

    A :class:`~pytorch_lightning.callbacks.Checkpoint`, so that Lightning runs it after the
    ModelCheckpoint listed before it: ``last.ckpt`` then records the best checkpoint of the validation
    that just ended (a run resumed from it tests the right one).
    """

    def __init__(self, filename: str = LAST_CHECKPOINT) -> None:
        super().__init__()
        self.filename = filename
        self._saved_step: int | None = None

    def save(self, trainer: pl.Trainer) -> Path:
        path = checkpoint_dir(trainer) / self.filename
        trainer.save_checkpoint(path)
        self._saved_step = int(trainer.global_step)
        return path

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.fast_dev_run and self._saved_step != int(trainer.global_step):
            self.save(trainer)
