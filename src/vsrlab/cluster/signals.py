"""The stop signals of a job process, recorded from its first instant and acted on where a run can stop.

A cluster stops a job with ``SIGUSR2`` (SLURM, ``signal_delay_s`` before a time limit or a pre-emption;
``scancel --signal=USR2``) or ``SIGTERM`` (``scancel``, ``scontrol requeue``, a scheduler, ``timeout``).
Two ways of handling them lose jobs: no handler yet (the default action of ``SIGUSR2`` kills the process
during its imports, and SLURM marks the job finished), and a handler that acts at once (submitit's
requeues and raises ``SystemExit`` in whatever frame it interrupted: a file half-written, a run marked
failed). :data:`STOP` does neither: its handler only records the first signal (a flag and a ``write(2)``,
nothing that takes a lock), and the run asks for it at its stopping points (before training, after each
training step, after each validation or test batch; ``vsrlab.apps.train`` and
:class:`vsrlab.callbacks.PreemptionCheckpoint`), then records its state and calls
:meth:`StopSignals.hand_over`: a requeue where one is possible, else an exit with ``128 + signal``.

Entry points that run a job install :data:`STOP` as their first statement (``vsrlab.cli.train``,
``vsrlab.cluster.task``); library use installs it for the length of a fit (the callback's ``setup``).
Importing this module changes nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

#: the signals a job treats as "stop now, resume later"
STOP_SIGNALS = ("SIGUSR2", "SIGTERM")
#: ``SIGUSR2``: the signal after which a job asks to be requeued (SLURM's time-limit / pre-emption warning)
REQUEUE_SIGNAL = signal.SIGUSR2


def signal_numbers(names: Iterable[str]) -> list[int]:
    """``['SIGUSR2', ...]`` as signal numbers; ValueError naming the unknown ones."""
    names = list(names)
    unknown = [n for n in names if not isinstance(getattr(signal, str(n), None), signal.Signals)]
    if unknown:
        raise ValueError(f"unknown signal names {unknown}, e.g. SIGUSR2, SIGTERM")
    return [int(getattr(signal, n)) for n in names]


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """Records the first stop signal of the process; see the module docstring.

    ``pending`` is that signal's number (None: none yet). ``requeue`` is what :meth:`hand_over` calls
    on ``SIGUSR2`` before exiting (the SLURM job process sets it to submitit's checkpoint-and-requeue);
    without it, a callable handler that was installed before this one is called instead (how a
    requeueing handler of an embedding program keeps working).
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self.reason = ""
        self.requeue: Callable[[int], Any] | None = None
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ handlers
    def install(self, names: Iterable[str] = STOP_SIGNALS) -> list[int]:
        """Handle ``names`` (idempotent); returns the signals this call installed, for :meth:`uninstall`."""
        installed = []
        for signum in signal_numbers(names):
            if signal.getsignal(signum) == self._handle:
                continue
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)
            installed.append(signum)
        return installed

    def uninstall(self, signums: Iterable[int]) -> None:
        """Restore the handlers that :meth:`install` replaced for ``signums``; once no signal is handled
        here any more, a recorded signal is forgotten (it belonged to what installed the handlers)."""
        for signum in signums:
            previous = self._previous.pop(signum, signal.SIG_DFL)
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if not self._previous:
            self.clear()

    def handles(self, signum: int) -> bool:
        return signal.getsignal(signum) == self._handle

    def _handle(self, signum: int, frame: Any) -> None:
        self.record(signum, "received")

    def record(self, signum: int, reason: str = "received") -> None:
        """Record ``signum`` unless a signal is already pending (also called without a signal: the time
        limit of a job whose warning signal came before its process could receive it)."""
        if self.pending is not None:
            return
        self.pending, self.reason = int(signum), reason
        # no logging (its lock may be held by the interrupted frame): one write(2)
        os.write(2, f"[vsrlab] {reason} {signal_name(signum)}: stopping at the next safe point\n".encode())

    def clear(self) -> None:
        self.pending, self.reason = None, ""

    # ----------------------------------------------------------------- hand-over
    def hand_over(self, signum: int, rank: int = 0, wait_for_requeue_s: float = 60.0) -> NoReturn:
        """After the run recorded its state: on ``SIGUSR2`` let the requeue action requeue the job
        (submitit's: ``scontrol requeue`` on rank 0, then ``sys.exit(-1)``), then exit with
        ``128 + signum``. A rank > 0 of a job that rank 0 requeues waits up to ``wait_for_requeue_s``
        for the requeue to end it, so that its own exit does not end the job first."""
        requeue = self.requeue
        if requeue is None:  # the handler that acts on this signal without this one, if callable
            other = self._previous.get(signum) if self.handles(signum) else signal.getsignal(signum)
            if callable(other):
                requeue = lambda s: other(s, None)  # noqa: E731
        if requeue is not None and signum == REQUEUE_SIGNAL:
            requeue(signum)
            if rank > 0 and self.requeue is not None:
                time.sleep(wait_for_requeue_s)
        sys.stdout.flush()
        raise SystemExit(128 + signum)


#: the process's stop-signal record
STOP = StopSignals()
