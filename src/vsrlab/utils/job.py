"""What a run directory keeps so that its results can be trusted and rebuilt without W&B.

``resolved_config.yaml`` (every interpolation resolved), ``git.json`` + ``git.diff`` (the code's
commit and uncommitted changes), ``status.json``, ``metrics.json`` and the ``done`` marker
(:mod:`vsrlab.sweep`); Hydra adds ``.hydra/config.yaml`` and ``.hydra/overrides.yaml``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from vsrlab.utils.io import atomic_write
from vsrlab.utils.run import write_json

log = logging.getLogger(__name__)

RESOLVED_CONFIG = "resolved_config.yaml"
SOURCE_DIR = Path(__file__).resolve().parents[3]


def process_rank() -> int:
    """Global rank of this process from the launcher's environment (0 outside distributed runs).

    Valid before a Trainer exists: Lightning's DDP children get ``LOCAL_RANK``/``RANK``, SLURM tasks
    ``SLURM_PROCID``.
    """
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def git_state(repo: str | os.PathLike = SOURCE_DIR) -> dict[str, Any]:
    """``{'commit', 'branch', 'dirty', 'diff'}`` of the git work tree holding vsrlab's source, or
    ``{'commit': None}`` when it is not one (an installed wheel) or git is missing."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    diff = git("diff", "HEAD")
    untracked = [line[3:] for line in git("status", "--porcelain").splitlines() if line.startswith("??")]
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD").strip(),
        "dirty": bool(diff) or bool(untracked),
        "untracked": untracked,
        "diff": diff,
    }


#: distributions whose versions are recorded in every run directory (``environment.json``)
KEY_PACKAGES = (
    "vsrlab",
    "torch",
    "pytorch-lightning",
    "lightning-fabric",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "wandb",
    "numpy",
    "scipy",
    "opencv-python-headless",
    "kornia",
    "scikit-image",
    "lmdb",
    "submitit",
    "hydra-submitit-launcher",
)


def environment_state() -> dict[str, Any]:
    """``{'python', 'platform', 'packages': {name: version or None}, 'torch': {cuda, cudnn, devices}}``
    of this process: what a result depends on besides the code and the config."""
    import platform
    import sys
    from importlib import metadata

    import torch

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: version(name) for name in KEY_PACKAGES},
        "torch": {
            "cuda": torch.version.cuda,
            "cudnn": cudnn,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        },
    }


def save_job_files(cfg: DictConfig, job_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``resolved_config.yaml``, ``git.json``, ``git.diff`` and ``environment.json`` (package
    versions) into ``job_dir``; returns ``{'git': state without the diff, 'environment': ...}`` for
    the loggers."""
    job_dir = Path(job_dir)
    with atomic_write(job_dir / RESOLVED_CONFIG, "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    state = git_state()
    diff = state.pop("diff", "")
    write_json(job_dir / "git.json", state)
    with atomic_write(job_dir / "git.diff", "w") as f:
        f.write(diff)
    environment = environment_state()
    write_json(job_dir / "environment.json", environment)
    return {"git": state, "environment": environment}


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
