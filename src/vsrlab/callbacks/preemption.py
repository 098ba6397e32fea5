"""Stop a run within one step or one evaluation batch of a stop signal, with a checkpoint to resume.

The signal itself is recorded by :data:`vsrlab.cluster.signals.STOP` (installed by the entry point, or
by this callback for the length of a fit or test); this callback acts on it at points every rank
reaches together, so that no collective ever runs inside a signal handler (Lightning's own SIGTERM
handling broadcasts from the handler, which deadlocks when the signal interrupts a rank inside another
collective, and is switched off while this callback is active):

- after every training step, the ranks agree with one ``all_reduce(MAX)`` of their recorded signals
  (any rank's signal stops all of them at the same step), write ``checkpoints/last.ckpt`` (every rank
  takes part, rank 0 writes) and raise :class:`Preempted`;
- at the start of training (a signal during start-up) and after every validation or test batch that
  every rank runs (evaluation shards may differ by one clip between ranks), the same agreement
  abandons the evaluation: a validation inside a fit writes ``last.ckpt`` of the last completed
  training step first (the weights are unchanged by validation), the sanity check and the test write
  nothing (the state to resume is already on disk).

A checkpoint written at a step whose validation is due (or was abandoned) records the loops as if that
validation had just started (:func:`resume_into_validation`): the resumed run validates that step from
its first batch, so its validation history and best checkpoint are those of an uninterrupted run
(Lightning itself would skip that validation).

:class:`Preempted` is a ``SystemExit`` with code ``128 + signal``; ``vsrlab.apps.train`` records the
state, finishes the W&B run as pre-empted and calls :meth:`PreemptionCheckpoint.hand_over` (a requeue
under SLURM, else the exit).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from vsrlab.cluster.signals import STOP, STOP_SIGNALS, signal_name, signal_numbers
from vsrlab.run.checkpoints import checkpoint_dir
from vsrlab.run.layout import LAST_CHECKPOINT
from vsrlab.utils.ddp import process_rank

log = logging.getLogger(__name__)


class Preempted(SystemExit):
    """Raised on every rank once the ranks agreed to stop on ``signum`` at ``step``; exits the process
    with ``128 + signum`` when nothing catches it. ``checkpoint`` is the file to resume from (None:
    the run has none yet and starts over)."""

    def __init__(self, signum: int, step: int, checkpoint: str | None, where: str = "after step") -> None:
        super().__init__(128 + signum)
        self.signum, self.step, self.checkpoint, self.where = signum, step, checkpoint, where

    def __str__(self) -> str:
        return f"pre-empted by {signal_name(self.signum)} {self.where} {self.step} ({self.checkpoint})"


def _quiet_signal_registration(trainer: pl.Trainer) -> None:
    """Keep Lightning from installing its SIGTERM/SIGUSR handlers on this trainer (they run
    collectives inside the handler); it still restores nothing on teardown."""
    connector = trainer._signal_connector

    def register_signal_handlers() -> None:
        connector.received_sigterm = False
        connector._original_handlers = {}

    connector.register_signal_handlers = register_signal_handlers


def _all_reduce(trainer: pl.Trainer, value: int, op: Any) -> int:
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        tensor = torch.tensor([value], dtype=torch.int64, device=trainer.strategy.root_device)
        torch.distributed.all_reduce(tensor, op=op)
        return int(tensor.item())
    return value


def resume_into_validation(checkpoint: dict[str, Any], batches_run: int) -> None:
    """Rewrite the fit loop's progress in ``checkpoint`` (written during a training step's end or after
    ``batches_run`` batches of its validation) so that Lightning resumes by running that validation
    from its first batch: the step counts as completed and the validation as started, with no batch
    processed (Lightning's "restarted mid-evaluation" state)."""
    fit = checkpoint["loops"]["fit_loop"]
    train = fit["epoch_loop.batch_progress"]
    for scope in ("total", "current"):
        train[scope]["completed"] = train[scope]["processed"]
    val = fit["epoch_loop.val_loop.batch_progress"]
    before = int(val["total"]["processed"]) - batches_run
    val["total"].update(ready=before + 1, started=before + 1, processed=before, completed=before)
    val["current"].update(ready=1, started=1, processed=0, completed=0)
    val["is_last_batch"] = False


class PreemptionCheckpoint(pl.Callback):
    """On one of ``signals``, stop every rank at the next agreed point with a checkpoint to resume.

    Args:
        signals: names of the signals acted on (``SIGUSR2``: submitit/SLURM; ``SIGTERM``).
        filename: checkpoint written into the ModelCheckpoint directory (default ``last.ckpt``: what
            ``ckpt_path: auto`` resumes from).

    After a stop, ``stopped`` is the :class:`Preempted` raised.
    """

    def __init__(
        self, signals: list[str] | tuple[str, ...] = STOP_SIGNALS, filename: str = LAST_CHECKPOINT
    ) -> None:
        super().__init__()
        try:
            self.signals = signal_numbers(signals)
        except ValueError as err:
            raise ValueError(f"{err} (callbacks.preemption.signals)") from None
        self.filename = filename
        self.stopped: Preempted | None = None
        self._installed: list[int] = []
        self._agreed_batches = 0  # evaluation batches every rank runs (agreement points)
        self._eval_batches = 0
        self._validation_to_resume: int | None = None  # validation batches run, when one is due or abandoned
        self.resumed_from: str | None = None

    @property
    def pending(self) -> int | None:
        """The stop signal this process recorded, if it is one of ``signals``."""
        return STOP.pending if STOP.pending in self.signals else None

    # ----------------------------------------------------------------- set-up
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "test"):
            return
        _quiet_signal_registration(trainer)
        self.stopped = None
        names = [signal.Signals(s).name for s in self.signals]
        self._installed = STOP.install(names)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        STOP.uninstall(self._installed)
        self._installed = []

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.teardown(trainer, pl_module, "")  # Lightning skips teardown after an exception

    # -------------------------------------------------------------- agreement
    def agreed_signal(self, trainer: pl.Trainer) -> int:
        """The largest signal number any rank recorded (0: none); every rank must call it."""
        return _all_reduce(trainer, self.pending or 0, torch.distributed.ReduceOp.MAX)

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        return checkpoint_dir(trainer) / self.filename

    def _stop(self, signum: int, step: int, checkpoint: str | None, where: str) -> None:
        self.stopped = Preempted(signum, step, checkpoint, where)
        log.warning("%s", self.stopped)
        raise self.stopped

    def _checkpoint_and_stop(self, trainer: pl.Trainer, signum: int, where: str) -> None:
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)  # every rank: Lightning's barrier, rank 0 writes
        step = int(trainer.global_step)
        log.warning("checkpoint at step %d written to %s after %s", step, path, signal_name(signum))
        self._stop(signum, step, str(path), where)

    # ----------------------------------------------------------------- points
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.resumed_from = trainer.ckpt_path
        signum = self.agreed_signal(trainer)
        if signum:  # start-up: the state to resume is the one this session started from
            self._stop(signum, int(trainer.global_step), self.resumed_from, "before step")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        signum = self.agreed_signal(trainer)
        if signum:
            loop = trainer.fit_loop
            if loop.epoch_loop._should_check_val_fx(loop._data_fetcher):
                self._validation_to_resume = 0
            self._checkpoint_and_stop(trainer, signum, "after step")

    def _evaluation_start(self, trainer: pl.Trainer, batches: Any) -> None:
        total = sum(int(n) for n in batches if n != float("inf"))
        self._agreed_batches = _all_reduce(trainer, total, torch.distributed.ReduceOp.MIN)
        self._eval_batches = 0

    def _evaluation_batch_end(self, trainer: pl.Trainer) -> int:
        self._eval_batches += 1
        return self.agreed_signal(trainer) if self._eval_batches <= self._agreed_batches else 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluation_start(trainer, trainer.num_sanity_val_batches if trainer.sanity_checking
                               else trainer.num_val_batches)  # fmt: skip

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kw: Any
    ) -> None:
        signum = self._evaluation_batch_end(trainer)
        if not signum or trainer.state.fn != "fit":
            return
        if trainer.sanity_checking:
            self._stop(signum, int(trainer.global_step), trainer.ckpt_path, "in the sanity check before step")
        self._validation_to_resume = self._eval_batches
        self._checkpoint_and_stop(trainer, signum, "validating after step")

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if self._validation_to_resume is not None:
            resume_into_validation(checkpoint, self._validation_to_resume)
            self._validation_to_resume = None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluation_start(trainer, trainer.num_test_batches)

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kw: Any
    ) -> None:
        signum = self._evaluation_batch_end(trainer)
        if signum:
            self._stop(signum, int(trainer.global_step), None, "testing after step")

    # -------------------------------------------------------------- hand-over
    def hand_over(self) -> None:
        """After the run recorded its state: requeue (SIGUSR2 under SLURM) and exit with 128 + signal."""
        if self.stopped is not None:
            STOP.hand_over(self.stopped.signum, rank=process_rank())
