"""Stable names: a sweep job's directory from its swept values, the short names of swept keys
(directories, W&B tags and report columns use the same ones) and a run's W&B id.

Launching the same sweep again finds the same directories (never a timestamp or a job number), so
finished jobs are skipped and unfinished ones resume. No torch here: Hydra imports the sweeper,
and with it this module, at every start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")
#: names a swept key must not be shortened to (report columns of their own)
RESERVED_NAMES = frozenset({"job", "params", "steps", "status"})


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Short names of swept keys: the last dotted component (``arch.num_offsets`` -> ``num_offsets``)
    unless another key shares it or it is one of :data:`RESERVED_NAMES`, then the full key."""
    last = [k.split(".")[-1].split("/")[-1] for k in keys]
    return {
        k: (s if last.count(s) == 1 and s not in RESERVED_NAMES else k)
        for k, s in zip(keys, last, strict=True)
    }


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


def run_id(output_dir: str | os.PathLike, log_dir: str | os.PathLike) -> str:
    """A W&B-safe id derived from the run directory relative to the log directory.

    The same directory always gives the same id, so a resumed run logs into the same W&B run.
    """
    try:
        rel = Path(output_dir).resolve().relative_to(Path(log_dir).resolve())
    except ValueError:
        rel = Path(output_dir)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel.as_posix()).strip("-")
    return slug[-120:] or "run"
