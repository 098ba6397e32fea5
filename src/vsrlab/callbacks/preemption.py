"""Save a checkpoint when the cluster is about to stop a run, so that the requeued job resumes.

SLURM (through submitit) sends ``SIGUSR2`` ``signal_delay_s`` seconds before a job's time limit or
pre-emption; schedulers and ``kill`` send ``SIGTERM``; ``srun`` delivers to every task, ``kill``
to one process, Lightning's local DDP launcher has the extra ranks as children of rank 0.

The design never runs a collective operation inside a signal handler (Lightning's own SIGTERM
handler broadcasts from the handler, which deadlocks when the signal interrupts a rank inside
another collective):

1. the handler only records the signal number on the rank that received it;
2. after every training step (``on_train_batch_end``, reached by every rank at the same step) the
   ranks agree with one ``all_reduce(MAX)`` of the recorded numbers: any rank's signal stops all
   of them, at the same step; a signal that arrives during validation is acted on after the
   next step;
3. every rank takes part in writing ``checkpoints/last.ckpt`` (Lightning writes it from rank 0)
   and raises :class:`Preempted`, a ``SystemExit`` with code 128 + signal;
4. ``vsrlab.train`` records the state, finishes the W&B run as pre-empted and calls
   :meth:`PreemptionCheckpoint.hand_over`: under submitit, submitit's ``SIGUSR2`` handler then
   requeues the job (rank 0); otherwise the process exits with 128 + signal.

Lightning's SIGTERM handling is switched off while this callback is active (its flag is never
set, so its own checks in the loops never fire).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from vsrlab.run.checkpoints import checkpoint_dir
from vsrlab.run.layout import LAST_CHECKPOINT

log = logging.getLogger(__name__)


class Preempted(SystemExit):
    """Raised on every rank once the ranks agreed to stop on ``signum`` after ``step``; exits the
    process with ``128 + signum`` when nothing catches it."""

    def __init__(self, signum: int, step: int, checkpoint: str) -> None:
        super().__init__(128 + signum)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    def __str__(self) -> str:
        return f"pre-empted by {signal.Signals(self.signum).name} after step {self.step} ({self.checkpoint})"


def _quiet_signal_registration(trainer: pl.Trainer) -> None:
    """Keep Lightning from installing its SIGTERM/SIGUSR handlers on this trainer (they run
    collectives inside the handler); it still restores nothing on teardown."""
    connector = trainer._signal_connector

    def register_signal_handlers() -> None:
        connector.received_sigterm = False
        connector._original_handlers = {}

    connector.register_signal_handlers = register_signal_handlers


class PreemptionCheckpoint(pl.Callback):
    """On one of ``signals``, checkpoint at the next step boundary, on every rank, and stop.

    Args:
        signals: names of the signals to handle (``SIGUSR2``: submitit/SLURM; ``SIGTERM``).
        filename: checkpoint written into the ModelCheckpoint directory (default ``last.ckpt``:
            what ``ckpt_path: auto`` resumes from).

    ``pending`` is the signal this rank received (None if none); after a stop, ``stopped`` is
    the :class:`Preempted` raised.
    """

    def __init__(
        self, signals: list[str] | tuple[str, ...] = ("SIGUSR2", "SIGTERM"), filename: str = LAST_CHECKPOINT
    ) -> None:
        super().__init__()
        unknown = [s for s in signals if not isinstance(getattr(signal, str(s), None), signal.Signals)]
        if unknown:
            raise ValueError(
                f"unknown signal names {unknown} (callbacks.preemption.signals), e.g. SIGUSR2, SIGTERM"
            )
        self.signals = [getattr(signal, s) for s in signals]
        self.filename = filename
        self.pending: int | None = None
        self.stopped: Preempted | None = None
        self._previous: dict[int, Any] = {}
        self._active = False

    # ------------------------------------------------------------- handlers
    def _handle(self, signum: int, frame: Any) -> None:
        if not self._active:  # not training: behave as without this callback
            self._forward(signum, frame)
            return
        if self.pending is None:
            self.pending = signum
            # no logging lock, no collective: only a flag and a write(2)
            os.write(
                2,
                f"[vsrlab] received {signal.Signals(signum).name}: checkpointing after the current "
                f"training step\n".encode(),
            )

    def _forward(self, signum: int, frame: Any) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        _quiet_signal_registration(trainer)
        self.pending, self.stopped, self._active = None, None, True
        for signum in self.signals:
            current = signal.getsignal(signum)
            if current != self._handle:
                self._previous[signum] = current
            signal.signal(signum, self._handle)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not self._active:
            return
        self._active = False
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    # ------------------------------------------------------------ agreement
    def agreed_signal(self, trainer: pl.Trainer) -> int:
        """The largest signal number any rank recorded (0: none); every rank must call it."""
        value = self.pending or 0
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([value], dtype=torch.int32, device=trainer.strategy.root_device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            value = int(flag.item())
        return value

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        return checkpoint_dir(trainer) / self.filename

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        signum = self.agreed_signal(trainer)
        if not signum:
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)  # every rank: Lightning's barrier, rank 0 writes
        step = int(trainer.global_step)
        log.warning("checkpoint at step %d written to %s after %s", step, path, signal.Signals(signum).name)
        self.stopped = Preempted(signum, step, str(path))
        raise self.stopped

    # ------------------------------------------------------------- hand-over
    def hand_over(self) -> None:
        """After the run recorded its state: let the handler that was installed before this
        callback (submitit's requeue, on rank 0) act on the signal, then exit with 128 + signal."""
        if self.stopped is None:
            return
        previous = self._previous.get(self.stopped.signum)
        if callable(previous) and self.stopped.signum != signal.SIGTERM:
            previous(self.stopped.signum, None)  # submitit: requeue, then sys.exit(-1) on rank 0
        raise SystemExit(self.stopped.code)
