"""Save a checkpoint when the cluster is about to stop a run, so that the requeued job resumes.

SLURM (through submitit) sends ``SIGUSR2`` ``signal_delay_s`` seconds before a job's time limit or
pre-emption; schedulers and ``kill`` send ``SIGTERM``. On either signal this callback lets the
current training step finish, writes ``checkpoints/last.ckpt`` (atomically, by every rank at the
same step), and ends the run; a relaunch (``ckpt_path: auto``, the default) resumes from it. Under
submitit the previous ``SIGUSR2`` handler (submitit's) then requeues the job.

The step boundary comes from Lightning's own SIGTERM handling: it checks a flag after every
training step and, under DDP, broadcasts rank 0's flag so all ranks stop at the same step.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class PreemptionCheckpoint(pl.Callback):
    """On one of ``signals``, checkpoint at the next step boundary and stop.

    Args:
        signals: names of the signals to handle (``SIGUSR2``: submitit/SLURM; ``SIGTERM``).
        filename: checkpoint written into the ModelCheckpoint directory (default ``last.ckpt``:
            what ``ckpt_path: auto`` resumes from).

    After the run, ``received`` holds the signal number that stopped it (None if none) and
    ``saved`` the checkpoint path.
    """

    def __init__(self, signals: list[str] | tuple[str, ...] = ("SIGUSR2", "SIGTERM"),
                 filename: str = "last.ckpt") -> None:
        super().__init__()
        unknown = [s for s in signals if not isinstance(getattr(signal, str(s), None), signal.Signals)]
        if unknown:
            raise ValueError(f"unknown signal names {unknown} (callbacks.preemption.signals), e.g. SIGUSR2, SIGTERM")
        self.signals = [getattr(signal, s) for s in signals]
        self.filename = filename
        self.received: int | None = None
        self.saved: str | None = None
        self._previous: dict[int, Any] = {}
        self._trainer: pl.Trainer | None = None

    # ------------------------------------------------------------- handlers
    def _handle(self, signum: int, frame: Any) -> None:
        if self._trainer is None:  # not training: behave as before this callback
            self._forward(signum, frame)
            return
        log.warning(f"received {signal.Signals(signum).name}: checkpointing after the current step")
        self.received = signum
        # Lightning's flag: the training loops raise SIGTERMException at the next step boundary
        # (on every rank: rank 0's flag is broadcast each step under DDP)
        self._trainer._signal_connector.received_sigterm = True

    def _forward(self, signum: int, frame: Any) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainer, self.received, self.saved = trainer, None, None
        for signum in self.signals:
            current = signal.getsignal(signum)
            if current is not self._handle and getattr(current, "__self__", None) is not self:
                self._previous[signum] = current
            signal.signal(signum, self._handle)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = None

    # ---------------------------------------------------------- checkpoint
    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        callback = trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
        return Path(folder) / self.filename

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if self.received is None:  # a SIGTERM that reached Lightning's handler first
            self.received = signal.SIGTERM
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        self.saved = str(path)
        log.warning(f"checkpoint at step {trainer.global_step} written to {path} after "
                    f"{signal.Signals(self.received).name}")
        self._trainer = None
        if self.received != signal.SIGTERM and callable(self._previous.get(self.received)):
            # submitit's handler requeues the job (and exits) now that the state is saved
            self._previous[self.received](self.received, None)
