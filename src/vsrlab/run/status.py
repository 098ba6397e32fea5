"""How far a run got: ``status.json`` (rewritten as it goes) and the ``done`` marker (written last)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vsrlab.run.layout import DONE_MARKER, STATUS_FILE, read_json, read_json_object, timestamp, write_json


def is_done(run_dir: str | os.PathLike) -> bool:
    """Whether a run finished: its ``done`` marker (written after its final metrics) exists."""
    return (Path(run_dir) / DONE_MARKER).is_file()


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``status.json`` of a run ({} when absent or being rewritten)."""
    return read_json_object(Path(run_dir) / STATUS_FILE) or {}


def write_status(run_dir: str | os.PathLike, state: str, **fields: Any) -> None:
    """Rewrite ``status.json`` of a run: ``state`` (running | preempted | failed | done) and fields
    such as ``step``, ``max_steps``, ``error``, ``signal``; ``updated`` is the current time. Fields of
    earlier writes are kept (``sessions``, ``preemptions``), except ``error`` and ``signal``, which
    belong to the states ``failed`` and ``preempted``."""
    path = Path(run_dir) / STATUS_FILE
    status = read_json(path) or {}
    status.update(fields, state=state, updated=timestamp())
    if state != "failed":
        status.pop("error", None)
    if state != "preempted":
        status.pop("signal", None)
    write_json(path, status)


def record_preemption(run_dir: str | os.PathLike, step: int, signal_name: str) -> None:
    """Mark a run ``preempted`` at ``step`` by ``signal_name`` and count it (``preemptions``)."""
    previous = read_status(run_dir)
    write_status(
        run_dir,
        "preempted",
        step=step,
        signal=signal_name,
        preemptions=int(previous.get("preemptions", 0)) + 1,
    )


def mark_done(run_dir: str | os.PathLike) -> None:
    """Write the ``done`` marker; call it after ``metrics.json`` is complete."""
    write_json(Path(run_dir) / DONE_MARKER, {"finished": timestamp()})


def job_state(job_dir: str | os.PathLike, status: dict[str, Any] | None = None) -> str:
    """``done`` (marker file), else ``status.json``'s state, ``started`` (a directory without
    either), or ``pending`` (no directory)."""
    job_dir = Path(job_dir)
    if not job_dir.is_dir():
        return "pending"
    if is_done(job_dir):
        return "done"
    state = (read_status(job_dir) if status is None else status).get("state")
    return str(state) if state else "started"
