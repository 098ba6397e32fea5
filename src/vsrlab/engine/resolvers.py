"""OmegaConf resolvers used by vsrlab's configs (registered by :func:`vsrlab.engine.init`)."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

from omegaconf import OmegaConf


def arch_is_recurrent(target: Any) -> bool:
    """Whether the architecture class ``target`` (an ``arch._target_``) is recurrent, by its
    contract (:mod:`vsrlab.archs.contract`): data configs choose their sampling from it."""
    from hydra.utils import get_class

    from vsrlab.archs.contract import is_recurrent

    return is_recurrent(get_class(str(target)))


def training_sampling(target: Any) -> str:
    """``'window'`` for sliding-window archs, ``'sequence'`` for recurrent ones."""
    return "sequence" if arch_is_recurrent(target) else "window"


def default_run_name() -> str:
    """Name of a run or sweep that was not named on the command line.

    A multirun is named after its experiment file (``vsrlab-train -m sweep=offset_diversity``
    -> ``offset_diversity``), or ``sweep`` without one, so that launching the same command again
    finds the same sweep directory. A single run inside a SLURM job is named after the job
    (``slurm-<job id>``, ``slurm-<array job id>_<task id>``): every task of the job agrees on it and
    a requeued job finds its run again; elsewhere a run gets the current time to the microsecond
    (two runs started in the same second get different directories).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        choices = HydraConfig.get().runtime.choices
        name = choices.get("sweep") or choices.get("experiment")
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)) if name else "sweep"
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm-{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def device_count(devices: Any) -> int:
    """Devices per node of a ``trainer.devices`` value (an int, a list of ids, or their string forms)."""
    if isinstance(devices, (list, tuple)) or (hasattr(devices, "__len__") and not isinstance(devices, str)):
        return len(devices)
    text = str(devices).strip()
    if text.lstrip("-").isdigit() and int(text) > 0:
        return int(text)
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    raise ValueError(
        f"trainer.devices={devices!r}: a cluster job needs a number of devices (e.g. trainer.devices=4)"
    )


def slurm_gpus_per_node(accelerator: Any, devices: Any) -> int | None:
    """GPUs to request per node: ``trainer.devices`` for GPU runs, None (no ``--gpus-per-node``,
    which clusters without GPUs refuse even as 0) for CPU runs."""
    return device_count(devices) if str(accelerator).lower() in ("gpu", "cuda") else None


def on_gpu(accelerator: Any, gpu_value: Any, other_value: Any) -> Any:
    """``gpu_value`` for GPU runs, ``other_value`` otherwise: recipes that train in mixed precision
    on GPUs (``${vsrlab.on_gpu:${trainer.accelerator},16-mixed,32-true}``) stay float32 on CPUs."""
    return gpu_value if str(accelerator).lower() in ("gpu", "cuda") else other_value


RESOLVERS = {
    "vsrlab.sampling": (training_sampling, False),
    "vsrlab.recurrent": (arch_is_recurrent, False),
    "vsrlab.run_name": (default_run_name, True),
    "vsrlab.devices": (device_count, False),
    "vsrlab.slurm_gpus": (slurm_gpus_per_node, False),
    "vsrlab.on_gpu": (on_gpu, False),
}


def register_resolvers() -> None:
    """``${vsrlab.sampling:${arch._target_}}`` (window | sequence) and
    ``${vsrlab.recurrent:${arch._target_}}`` (bool) adapt data configs to the arch;
    ``${vsrlab.run_name:}`` is :func:`default_run_name` (cached: one value per config);
    ``${vsrlab.devices:${trainer.devices}}`` and
    ``${vsrlab.slurm_gpus:${trainer.accelerator},${trainer.devices}}``
    size SLURM jobs from the trainer config; ``${vsrlab.on_gpu:${trainer.accelerator},a,b}`` is a
    on GPUs and b elsewhere."""
    for name, (fn, cache) in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)
