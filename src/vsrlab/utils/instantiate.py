"""Instantiate groups of callbacks and loggers from their Hydra configs."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def instantiate_group(cfg: DictConfig | None, kind: str) -> list[Any]:
    """Every entry with a ``_target_`` of a config group such as ``callbacks`` or ``logger``.

    Raises:
        TypeError: if an entry is not a config with ``_target_`` (names the entry).
    """
    objects: list[Any] = []
    if not cfg:
        return objects
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"{kind} config must be a mapping of name -> config, got {type(cfg).__name__}")
    for name, entry in cfg.items():
        if entry is None:
            continue
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise TypeError(f"{kind}.{name} must be a config with a _target_, got {entry!r}")
        objects.append(instantiate(entry))
    return objects
