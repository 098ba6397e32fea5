"""Instantiate groups of callbacks and loggers from their Hydra configs."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf


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


def plain_container(cfg: Any) -> Any:
    """``cfg`` with every OmegaConf container (also inside dicts, lists and tuples) as plain dicts and
    lists: the hyperparameters go into checkpoints, which ``torch.load(weights_only=True)`` (torch's
    default, used by ``VSRModule.load_from_checkpoint``) reads only when they hold plain Python objects
    (a ``ListConfig`` such as ``freeze`` made it fail)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, dict):
        return {k: plain_container(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [plain_container(v) for v in cfg]
    if isinstance(cfg, tuple):
        return tuple(plain_container(v) for v in cfg)
    return cfg
