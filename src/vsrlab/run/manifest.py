"""``sweep.json``: a sweep's name, swept keys, jobs and launches, the keys that are the offset
groups G and offsets N of a G x N grid, and each job's final state after a launch.

Readers (``vsrlab-report``) also handle sweeps without a manifest (scan mode: job directories and
their ``.hydra/overrides.yaml``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vsrlab.run.identity import split_override
from vsrlab.run.layout import (
    DONE_MARKER,
    MANIFEST,
    METRICS_FILE,
    OVERRIDES_FILE,
    STATUS_FILE,
    read_json,
    read_json_object,
    timestamp,
    write_json,
)
from vsrlab.run.status import is_done, read_status, write_status
from vsrlab.utils.text import natural_key

#: marker files / folders whose presence makes an immediate subdirectory a job (scan mode)
JOB_MARKERS = (METRICS_FILE, STATUS_FILE, ".hydra", DONE_MARKER)


class ManifestError(ValueError):
    """A sweep directory that cannot be read (missing, unreadable manifest, no jobs); names it."""


def update_manifest(
    sweep_dir: str | os.PathLike,
    name: str,
    swept_keys: Sequence[str],
    jobs: Sequence[Mapping[str, Any]],
    launched: Sequence[str],
    skipped: Sequence[str],
    axes: Mapping[str, str] | None = None,
) -> Path:
    """Write ``sweep.json``: jobs of earlier launches are kept (a grid extended later keeps its old
    rows), new ones appended; one ``launches`` entry records what this launch ran and skipped;
    ``axes`` (``{'groups': key, 'offsets': key}``) names the swept keys that are G and N."""
    path = Path(sweep_dir) / MANIFEST
    manifest = read_json(path) or {"name": name, "swept_keys": [], "jobs": [], "launches": []}
    manifest["name"] = name
    manifest["swept_keys"] = list(dict.fromkeys([*manifest.get("swept_keys", []), *swept_keys]))
    if axes:
        manifest["axes"] = dict(axes)
    known = {j["subdir"] for j in manifest["jobs"]}
    manifest["jobs"] += [
        {"subdir": j["subdir"], "overrides": dict(j["overrides"])} for j in jobs if j["subdir"] not in known
    ]
    manifest.setdefault("launches", []).append(
        {"time": timestamp(), "launched": list(launched), "skipped": list(skipped)}
    )
    return write_json(path, manifest)


def record_job_states(
    sweep_dir: str | os.PathLike,
    subdirs: Sequence[str],
    failures: Mapping[str, str] | None = None,
    lost: Iterable[str] = (),
) -> Path:
    """Copy each job's final ``state`` (``done`` if its marker exists), ``step`` and number of
    ``preemptions`` from its ``status.json`` into ``sweep.json`` (after a launch returned), with the
    ``error`` of each job in ``failures`` (``{subdir: message}``).

    A job in ``lost`` ended without a result (a task killed outright, cancelled, a failed node): if its
    ``status.json`` still says it runs or waits for a requeue, it is marked ``failed`` with its message,
    so that no job is left ``running`` or ``preempted`` without a job behind it. The status of a job
    that failed by itself (e.g. a refused relaunch) is its own and left as it is."""
    path = Path(sweep_dir) / MANIFEST
    manifest = read_json(path) or {"jobs": []}
    wanted, failures, lost = set(subdirs), dict(failures or {}), set(lost)
    for job in manifest["jobs"]:
        if job["subdir"] not in wanted:
            continue
        job_dir = Path(sweep_dir) / job["subdir"]
        status = read_status(job_dir)
        message = failures.get(job["subdir"])
        running = status.get("state") in ("running", "preempted")
        if job["subdir"] in lost and message and not is_done(job_dir) and running:
            write_status(job_dir, "failed", error=message)
            status = read_status(job_dir)
        job.update(
            state="done" if is_done(job_dir) else status.get("state", "unknown"),
            step=status.get("step"),
            preemptions=int(status.get("preemptions", 0)),
        )
        if message:
            job["error"] = message
        else:
            job.pop("error", None)
    return write_json(path, manifest)


def record_submissions(sweep_dir: str | os.PathLike, submitted: Mapping[str, Mapping[str, Any]]) -> Path:
    """Record the cluster job of each job (``{subdir: {job_id, folder, tasks, log}}``) in ``sweep.json``,
    so that a relaunch attaches to the jobs still queued instead of submitting them twice."""
    path = Path(sweep_dir) / MANIFEST
    manifest = read_json(path) or {"jobs": []}
    for job in manifest["jobs"]:
        if job["subdir"] in submitted:
            job["cluster_job"] = {**dict(submitted[job["subdir"]]), "submitted": timestamp()}
    return write_json(path, manifest)


def read_submissions(sweep_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{subdir: cluster job}`` as :func:`record_submissions` recorded them ({} if none)."""
    manifest = read_json_object(Path(sweep_dir) / MANIFEST) or {}
    return {
        job["subdir"]: dict(job["cluster_job"])
        for job in manifest.get("jobs", [])
        if isinstance(job, dict) and isinstance(job.get("cluster_job"), dict) and job.get("subdir")
    }


def job_swept_values(sweep_dir: str | os.PathLike, subdir: str) -> dict[str, str]:
    """The swept values of the job in ``subdir`` according to the sweep's manifest ({} if unknown)."""
    manifest = read_json_object(Path(sweep_dir) / MANIFEST) or {}
    for job in manifest.get("jobs", []):
        if job.get("subdir") == subdir:
            return dict(job.get("overrides", {}))
    return {}


# ------------------------------------------------------------------------------------------- reading
def parse_overrides(lines: Iterable[Any]) -> dict[str, str]:
    """Hydra override strings (``"arch.num_offsets=4"``, ``"+x=1"``) as ``{key: value}``.

    Leading ``+`` / ``++`` are dropped, deletions (``~key``) and keys starting with ``hydra`` ignored.
    """
    overrides: dict[str, str] = {}
    for line in lines:
        if not isinstance(line, str) or "=" not in line or line.startswith("~"):
            continue
        key, value = split_override(line)
        if key and not key.startswith("hydra"):
            overrides[key.strip()] = value.strip()
    return overrides


def read_hydra_overrides(job_dir: str | os.PathLike) -> dict[str, str]:
    """The overrides of ``<job_dir>/.hydra/overrides.yaml``; empty when absent or unreadable."""
    import yaml

    try:
        data = yaml.safe_load((Path(job_dir) / OVERRIDES_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return parse_overrides(data) if isinstance(data, list) else {}


def infer_swept_keys(overrides: Sequence[dict[str, str]]) -> list[str]:
    """Keys present in the overrides of every job with at least two different values, in the order
    they appear in the first job."""
    if not overrides:
        return []
    common = [key for key in overrides[0] if all(key in job for job in overrides)]
    return [key for key in common if len({str(job[key]) for job in overrides}) > 1]


def scan_job_dirs(sweep_dir: str | os.PathLike) -> list[str]:
    """Immediate subdirectories of ``sweep_dir`` that hold a job (:data:`JOB_MARKERS`), naturally sorted."""
    names = [
        p.name
        for p in Path(sweep_dir).iterdir()
        if p.is_dir() and not p.name.startswith(".") and any((p / m).exists() for m in JOB_MARKERS)
    ]
    return sorted(names, key=natural_key)


def read_manifest(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """``{name, sweep_dir, source, swept_keys, axes, jobs: [{subdir, overrides}]}`` of a sweep, in
    manifest order: from ``sweep.json`` when present (``source``), else by scanning the job
    directories (``axes`` is then empty).

    Raises:
        ManifestError: the directory is missing, ``sweep.json`` is unreadable, or there are no jobs.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ManifestError(f"sweep directory not found: {sweep_dir}")
    manifest_path = sweep_dir / MANIFEST
    axes: dict[str, str] = {}
    if manifest_path.exists():
        data = read_json_object(manifest_path)
        if data is None:
            raise ManifestError(f"cannot read the sweep manifest {manifest_path} (not a JSON object)")
        jobs = []
        for entry in data.get("jobs") or []:
            if isinstance(entry, str):
                entry = {"subdir": entry}
            if not isinstance(entry, dict) or not entry.get("subdir"):
                continue
            overrides = {str(k): str(v) for k, v in (entry.get("overrides") or {}).items()}
            jobs.append({"subdir": str(entry["subdir"]), "overrides": overrides})
        if not jobs:
            raise ManifestError(f"the sweep manifest {manifest_path} lists no jobs")
        swept = data.get("swept_keys")
        swept_keys = [str(k) for k in swept] if isinstance(swept, list) else None
        if isinstance(data.get("axes"), dict):
            axes = {str(k): str(v) for k, v in data["axes"].items()}
        source, name = MANIFEST, str(data.get("name") or sweep_dir.resolve().name)
    else:
        subdirs = scan_job_dirs(sweep_dir)
        if not subdirs:
            raise ManifestError(
                f"no jobs in {sweep_dir}: no sweep.json and no subdirectory with metrics.json, "
                "status.json or .hydra/"
            )
        jobs = [{"subdir": s, "overrides": read_hydra_overrides(sweep_dir / s)} for s in subdirs]
        swept_keys, source, name = None, "scan", sweep_dir.resolve().name
    if swept_keys is None:
        swept_keys = infer_swept_keys([job["overrides"] for job in jobs])
    return {
        "name": name,
        "sweep_dir": str(sweep_dir),
        "source": source,
        "swept_keys": swept_keys,
        "axes": axes,
        "jobs": jobs,
    }
