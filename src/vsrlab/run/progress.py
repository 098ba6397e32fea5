"""Progress of a sweep while its jobs run: one line when a job starts, one when it ends, a summary at the end.

Read from the job directories (``status.json``, ``metrics.json``), not from the launcher, so every launcher
shows the same lines: Hydra's basic one, submitit's local processes, SLURM.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vsrlab.run.layout import METRICS_FILE, read_json_object
from vsrlab.run.status import job_state, read_status

ENDED = ("done", "failed", "preempted")


def job_line(job_dir: Path, state: str, status: dict[str, Any]) -> str:
    """``<job>: <state> at step <n>/<max>[, best val PSNR <x> dB][: error] (<dir>)``."""
    steps = f"step {status.get('step', '?')}" + (f"/{status['max_steps']}" if status.get("max_steps") else "")
    text = f"{job_dir.name}: {state} at {steps}"
    best = ((read_json_object(job_dir / METRICS_FILE) or {}).get("best") or {}).get("score")
    if state == "done" and best is not None:
        text += f", best val PSNR {float(best):.2f} dB"
    if state == "failed" and status.get("error"):
        text += f": {str(status['error']).splitlines()[0][:200]}"
    return f"{text} ({job_dir})"


class SweepProgress:
    """Context manager that polls the directories of ``subdirs`` under ``sweep_dir`` every ``poll_s``
    seconds while a launch runs and calls ``echo`` with a line when a job starts and when it ends, and a
    summary (``n done, m failed, ...``) on exit."""

    def __init__(
        self,
        sweep_dir: str | os.PathLike,
        subdirs: Sequence[str],
        echo: Callable[[str], Any],
        poll_s: float = 2.0,
    ) -> None:
        self.sweep_dir, self.subdirs, self.echo, self.poll_s = Path(sweep_dir), list(subdirs), echo, poll_s
        self.seen: dict[str, str] = {}  # subdir -> last state reported
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-progress", daemon=True)

    def poll(self) -> None:
        for subdir in self.subdirs:
            job_dir = self.sweep_dir / subdir
            status = read_status(job_dir)
            state = job_state(job_dir, status)
            if state in ("pending", "started") or state == self.seen.get(subdir):
                continue
            if state == "running":
                step = status.get("step", 0)
                self.echo(f"{subdir}: started at step {step} ({job_dir})")
            elif state in ENDED:
                self.echo(job_line(job_dir, state, status))
            self.seen[subdir] = state

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def __enter__(self) -> SweepProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()
        counts: dict[str, int] = {}
        for subdir in self.subdirs:
            state = self.seen.get(subdir, "not started")
            counts[state] = counts.get(state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        self.echo(f"{len(self.subdirs)} jobs of {self.sweep_dir}: {summary}")
