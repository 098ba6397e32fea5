"""A Lightning callback that stops its own run at a chosen moment, the way a cluster would, for the
pre-emption tests (tests/test_preemption.py in one process or two DDP ranks, tests/test_slurm.py as a
real SLURM job). Lives beside the tests, importable in every rank and every SLURM task through
PYTHONPATH."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from vsrlab.cluster.signals import STOP
from vsrlab.cluster.slurm import current_job_id

#: when the signal is sent: while the run is built (the callbacks are built after the data and the
#: model), inside the sanity check, after training step ``step``, inside the first validation batch
#: after ``step``, while the checkpoint after ``step`` is written, inside the first test batch
MOMENTS = ("build", "sanity", "step", "validation", "save", "test")


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


class SignalAt(pl.Callback):
    """Sends a stop signal once, at ``moment`` (:data:`MOMENTS`), on the ranks in ``ranks``.

    ``how``: a signal name sent to this process (``SIGUSR2``, ``SIGTERM``), or on SLURM
    ``scancel-usr2`` (``scancel --signal=USR2 <job>``: every task of the job) or ``scontrol-requeue``.
    With ``once`` (a file name), the signal is sent only if ``<run dir>/<once>`` does not exist, which
    it then creates: a requeued job runs the same config, and must not stop at the same moment again.
    """

    def __init__(
        self,
        moment: str,
        step: int = 4,
        how: str = "SIGUSR2",
        ranks: list[int] | tuple[int, ...] = (0,),
        once: str | None = None,
        run_dir: str | None = None,
    ) -> None:
        if moment not in MOMENTS:
            raise ValueError(f"moment {moment!r} is not one of {MOMENTS}")
        self.moment, self.step, self.how, self.ranks, self.once = moment, int(step), how, list(ranks), once
        self.run_dir, self.sent = run_dir, False
        if moment == "build":
            self._send(int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))))

    def _send(self, rank: int) -> None:
        if self.sent or rank not in self.ranks:
            return
        if self.once and self.run_dir:
            marker = Path(self.run_dir) / self.once
            if marker.exists():
                return
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        self.sent = True
        job = current_job_id() or ""
        # the command runs inside the job's step, which SLURM signals whole: it must not die of it
        immune = {"preexec_fn": _ignore_stop_signals}
        if self.how == "scancel-usr2":
            subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=60, **immune)
        elif self.how == "scontrol-requeue":
            subprocess.run(["scontrol", "requeue", job], check=True, timeout=60, **immune)
        else:
            os.kill(os.getpid(), getattr(signal, self.how))
        # SLURM delivers asynchronously: stay at this moment until the signal is here
        deadline = time.monotonic() + 30
        while STOP.pending is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.moment == "sanity" and trainer.sanity_checking:
            self._send(trainer.global_rank)
        if self.moment == "validation" and not trainer.sanity_checking and trainer.global_step >= self.step:
            self._send(trainer.global_rank)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.moment == "step" and trainer.global_step == self.step:
            self._send(trainer.global_rank)

    def on_save_checkpoint(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.moment == "save" and trainer.global_step >= self.step:
            self._send(trainer.global_rank)

    def on_test_batch_start(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.moment == "test":
            self._send(trainer.global_rank)
