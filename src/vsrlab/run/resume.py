"""Resuming a run: its stored config must match the new one, except for keys that do not change
the experiment (``resume.ignore``)."""

from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from vsrlab.run.layout import RESOLVED_CONFIG

log = logging.getLogger(__name__)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: data}


def config_changes(stored: dict[str, Any], current: dict[str, Any], ignore: list[str]) -> list[str]:
    """``'key: stored -> current'`` for every leaf that differs, skipping keys matching a pattern of
    ``ignore`` (``fnmatch``, on dotted keys: ``paths.*``, ``*root``)."""
    a, b = _flatten(stored), _flatten(current)
    changes = []
    for key in sorted(set(a) | set(b)):
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            changes.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return changes


def check_same_config(
    cfg: DictConfig, job_dir: str | os.PathLike, ignore: list[str], strict: bool = True
) -> list[str]:
    """Compare ``cfg`` with the config stored in a run directory; returns the changes.

    A sweep job's identity is the sweep name and its swept values; this check catches a relaunch
    that changed anything else (which would otherwise be resumed or skipped as the same job).

    Raises:
        ValueError: if ``strict`` and something changed, listing the keys, stored and new values
            (otherwise the changes are logged as a warning).
    """
    path = Path(job_dir) / RESOLVED_CONFIG
    if not path.is_file():
        return []
    stored = yaml.safe_load(path.read_text()) or {}
    changes = config_changes(stored, OmegaConf.to_container(cfg, resolve=True), ignore)
    if changes:
        shown = "\n  ".join(changes[:20]) + ("\n  ..." if len(changes) > 20 else "")
        if strict:
            raise ValueError(
                f"{job_dir} was run with another config ({path}); changed:\n  {shown}\n"
                f"use another run_name (a new sweep or run), ckpt_path=last to continue it "
                f"with the changes, or resume.check_config=false"
            )
        log.warning("continuing %s with a changed config:\n  %s", job_dir, shown)
    return changes
