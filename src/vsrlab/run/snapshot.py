"""What a run directory keeps so that its results can be trusted and rebuilt without W&B: the
resolved config, Hydra's ``.hydra/`` files, the code's git state and diff, and the versions of the
packages it ran with."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, read_write

from vsrlab.run.layout import ENVIRONMENT_FILE, GIT_DIFF, GIT_FILE, HYDRA_DIR, RESOLVED_CONFIG, write_json
from vsrlab.utils.io import atomic_write

SOURCE_DIR = Path(__file__).resolve().parents[3]


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


@functools.cache
def code_state() -> dict[str, Any]:
    """The git state of vsrlab's source when this process first asked, which
    :func:`vsrlab.engine.init` does at start-up: the code a process runs is the code it imported, so
    every job of a multirun records the launch's state even if the work tree changes meanwhile
    (the configs, read per job, are in each job's ``resolved_config.yaml``)."""
    return git_state()


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


def save_hydra_files(cfg: DictConfig, job_dir: str | os.PathLike) -> Path | None:
    """Write ``.hydra/config.yaml`` (``cfg``, unresolved), ``hydra.yaml`` (the Hydra config of this
    job) and ``overrides.yaml`` (the job's command-line overrides) into ``job_dir``, with the content
    Hydra writes itself; returns the folder, or None outside a Hydra job running in ``job_dir``.

    ``vsrlab-train`` sets ``hydra.output_subdir: null`` (conf/train.yaml) so that Hydra does not
    write these files before the task function runs: a relaunch that training refuses (a changed
    config, ``ckpt_path=null`` over a checkpoint) leaves the run directory as it was, and vsrlab
    writes them once the run is accepted. ``hydra.yaml`` records ``output_subdir`` as the folder
    written (:data:`~vsrlab.run.layout.HYDRA_DIR`), as Hydra's own file would.
    """
    if not HydraConfig.initialized():
        return None
    hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
    output_dir = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None)
    if not output_dir or Path(str(output_dir)).resolve() != Path(job_dir).resolve():
        return None  # composed outside a Hydra job (tests, notebooks), or another job's config
    with read_write(hydra_cfg.hydra):
        hydra_cfg.hydra.output_subdir = HYDRA_DIR
    folder = Path(job_dir) / HYDRA_DIR
    files = {
        "config.yaml": cfg,
        "hydra.yaml": hydra_cfg,
        "overrides.yaml": hydra_cfg.hydra.overrides.task,
    }
    for name, node in files.items():
        with atomic_write(folder / name, "wb") as f:
            f.write(OmegaConf.to_yaml(node).encode("utf-8"))
    return folder


def save_job_files(cfg: DictConfig, job_dir: str | os.PathLike) -> dict[str, Any]:
    """Write ``resolved_config.yaml``, ``git.json``, ``git.diff``, ``environment.json`` (package
    versions) and, in a Hydra job, ``.hydra/`` (:func:`save_hydra_files`) into ``job_dir``, once the
    run is accepted; returns ``{'git': state without the diff, 'environment': ...}`` for the loggers."""
    job_dir = Path(job_dir)
    with atomic_write(job_dir / RESOLVED_CONFIG, "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    save_hydra_files(cfg, job_dir)
    state = dict(code_state())
    diff = state.pop("diff", "")
    write_json(job_dir / GIT_FILE, state)
    with atomic_write(job_dir / GIT_DIFF, "w") as f:
        f.write(diff)
    environment = environment_state()
    write_json(job_dir / ENVIRONMENT_FILE, environment)
    return {"git": state, "environment": environment}
