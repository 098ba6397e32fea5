"""The files of a run directory and of a sweep directory, and how they are read and written.

A run (``logs/<task>/runs/<run_name>``) or a sweep job (``logs/<task>/multiruns/<sweep>/<job>``)
keeps: ``checkpoints/`` (``last.ckpt``, ``last.previous.ckpt``, ``best_*.ckpt``),
``resolved_config.yaml``, ``git.json`` + ``git.diff``, ``environment.json``, ``status.json``
(rewritten as the run goes), ``metrics.json`` and, written last, the ``done`` marker; ``.hydra/``
keeps the composed config, Hydra's config and the command-line overrides (written by Hydra for the
other apps, by vsrlab once a training run is accepted: :func:`vsrlab.run.snapshot.save_hydra_files`).
A sweep directory keeps ``sweep.json`` (the manifest) beside its job directories.

Every JSON file here is written atomically, indented, with sorted keys; readers of files that a
running job may be rewriting use :func:`read_json_object`, which never raises.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from vsrlab.utils.io import atomic_write

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
RESOLVED_CONFIG = "resolved_config.yaml"
GIT_FILE = "git.json"
GIT_DIFF = "git.diff"
ENVIRONMENT_FILE = "environment.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"
DONE_MARKER = "done"
MANIFEST = "sweep.json"
#: Hydra's ``output_subdir`` (its ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml``)
HYDRA_DIR = ".hydra"
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"


def timestamp() -> str:
    """The local time as every run file records it: ``2026-11-30T09:21:09``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, or None when the file does not exist.

    Raises:
        ValueError: the file is not valid JSON (naming it).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def read_json_object(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is absent, unreadable or not an object (a
    job killed mid-write must not break whoever reads its files)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON with sorted keys, atomically."""
    with atomic_write(path, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(path)
