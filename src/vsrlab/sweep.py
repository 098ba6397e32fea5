"""Stable identities for the jobs of a Hydra multirun sweep, and the files that say how far each got.

A sweep lives in ``<log_dir>/<task_name>/multiruns/<sweep name>/``; each job in a subdirectory named
after its swept values (``deformable_groups=8,num_offsets=25``), never after a timestamp or a job
number, so launching the same command again finds the same directories: the sweeper
(``hydra/sweeper=vsrlab``) skips jobs whose ``done`` marker exists and the jobs it launches resume
from their ``last.ckpt``. This module has no torch import: Hydra imports it at every start-up.

Files of a sweep directory: ``sweep.json`` (the manifest: name, swept keys, every job's subdir
and swept values, one entry per launch). Files of a job directory: ``status.json`` (state, step,
time; rewritten as the job runs), ``metrics.json`` (final metrics), ``done`` (written last).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vsrlab.utils.io import atomic_write

MANIFEST = "sweep.json"
DONE_MARKER = "done"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Display names of swept keys: the last dotted component (``arch.num_offsets`` ->
    ``num_offsets``) unless two keys share it, then the full key."""
    last = [k.split(".")[-1].split("/")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def job_subdir(swept: Mapping[str, str]) -> str:
    """The subdirectory of a job from its swept values, in sweep order:
    ``{'arch.deformable_groups': '8', 'arch.num_offsets': '25'}`` -> ``deformable_groups=8,num_offsets=25``.

    Characters other than letters, digits and ``_.+=-`` become ``-``; a sweep with no swept key
    (a multirun of one job) uses ``job``.
    """
    if not swept:
        return "job"
    names = short_keys(list(swept))
    parts = [
        f"{_UNSAFE.sub('-', names[k]).strip('-')}={_UNSAFE.sub('-', str(v)).strip('-')}"
        for k, v in swept.items()
    ]
    return ",".join(parts)


def split_override(override: str) -> tuple[str, str]:
    """``'+arch.num_offsets=9'`` -> ``('arch.num_offsets', '9')`` (prefixes ``+``, ``++``, ``~`` dropped)."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def plan_jobs(job_overrides: Sequence[Sequence[str]], swept_keys: Sequence[str]) -> list[dict[str, Any]]:
    """``[{'subdir', 'overrides': {swept key: value}, 'args': [override, ...]}]`` for every job.

    Raises:
        ValueError: if two jobs would share a directory (values that differ only in characters
            that are not allowed in directory names), naming both.
    """
    jobs, seen = [], {}
    for args in job_overrides:
        values = dict(split_override(o) for o in args)
        swept = {k: values[k] for k in swept_keys if k in values}
        subdir = job_subdir(swept)
        if subdir in seen:
            raise ValueError(f"jobs {seen[subdir]} and {swept} map to the same directory {subdir!r}")
        seen[subdir] = swept
        jobs.append({"subdir": subdir, "overrides": swept, "args": list(args)})
    return jobs


def is_done(job_dir: str | os.PathLike) -> bool:
    """Whether a job finished: its ``done`` marker (written after its final metrics) exists."""
    return (Path(job_dir) / DONE_MARKER).is_file()


def _atomic_json(path: Path, data: Any) -> None:
    with atomic_write(path, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, or None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def update_manifest(
    sweep_dir: str | os.PathLike,
    name: str,
    swept_keys: Sequence[str],
    jobs: Sequence[Mapping[str, Any]],
    launched: Sequence[str],
    skipped: Sequence[str],
) -> Path:
    """Write ``sweep.json``: jobs of earlier launches are kept (a grid extended later keeps its old
    rows), new ones appended; one ``launches`` entry records what this launch ran and skipped."""
    path = Path(sweep_dir) / MANIFEST
    manifest = read_json(path) or {"name": name, "swept_keys": [], "jobs": [], "launches": []}
    manifest["name"] = name
    manifest["swept_keys"] = list(dict.fromkeys([*manifest.get("swept_keys", []), *swept_keys]))
    known = {j["subdir"] for j in manifest["jobs"]}
    manifest["jobs"] += [
        {"subdir": j["subdir"], "overrides": dict(j["overrides"])} for j in jobs if j["subdir"] not in known
    ]
    manifest.setdefault("launches", []).append(
        {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "launched": list(launched), "skipped": list(skipped)}
    )
    _atomic_json(path, manifest)
    return path


def record_job_states(sweep_dir: str | os.PathLike, subdirs: Sequence[str]) -> Path:
    """Copy each job's final ``state`` (``done`` if its marker exists), ``step`` and number of
    ``preemptions`` from its ``status.json`` into ``sweep.json`` (after a launch returned)."""
    path = Path(sweep_dir) / MANIFEST
    manifest = read_json(path) or {"jobs": []}
    wanted = set(subdirs)
    for job in manifest["jobs"]:
        if job["subdir"] in wanted:
            job_dir = Path(sweep_dir) / job["subdir"]
            status = read_json(job_dir / STATUS_FILE) or {}
            job.update(
                state="done" if is_done(job_dir) else status.get("state", "unknown"),
                step=status.get("step"),
                preemptions=int(status.get("preemptions", 0)),
            )
    _atomic_json(path, manifest)
    return path


def job_swept_values(sweep_dir: str | os.PathLike, subdir: str) -> dict[str, str]:
    """The swept values of the job in ``subdir`` according to the sweep's manifest ({} if unknown)."""
    manifest = read_json(Path(sweep_dir) / MANIFEST) or {}
    for job in manifest.get("jobs", []):
        if job.get("subdir") == subdir:
            return dict(job.get("overrides", {}))
    return {}


def write_status(job_dir: str | os.PathLike, state: str, **fields: Any) -> None:
    """Rewrite ``status.json`` of a job: ``state`` (running | preempted | failed | done) and fields
    such as ``step``, ``max_steps``, ``error``; ``updated`` is the current time."""
    path = Path(job_dir) / STATUS_FILE
    status = read_json(path) or {}
    status.update(fields, state=state, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if state != "failed":
        status.pop("error", None)
    if state != "preempted":
        status.pop("signal", None)
    _atomic_json(path, status)


def record_preemption(job_dir: str | os.PathLike, step: int, signal_name: str) -> None:
    """Mark a job ``preempted`` at ``step`` by ``signal_name`` and count it (``preemptions``)."""
    previous = read_json(Path(job_dir) / STATUS_FILE) or {}
    write_status(
        job_dir,
        "preempted",
        step=step,
        signal=signal_name,
        preemptions=int(previous.get("preemptions", 0)) + 1,
    )


def mark_done(job_dir: str | os.PathLike) -> None:
    """Write the ``done`` marker; call it after ``metrics.json`` is complete."""
    path = Path(job_dir) / DONE_MARKER
    _atomic_json(path, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
