"""OmegaConf resolvers used by vsrlab's configs (registered when vsrlab's apps are imported)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def training_sampling(num_frame: Any) -> str:
    """``'window'`` for sliding-window archs (they have ``num_frame``), ``'sequence'`` for recurrent ones."""
    return "sequence" if num_frame is None else "window"


def is_recurrent(num_frame: Any) -> bool:
    """Whether an arch is recurrent: it has no ``num_frame``."""
    return num_frame is None


RESOLVERS = {"vsrlab.sampling": training_sampling, "vsrlab.recurrent": is_recurrent}


def register_resolvers() -> None:
    """``${vsrlab.sampling:${oc.select:arch.num_frame,null}}`` (window | sequence) and
    ``${vsrlab.recurrent:${oc.select:arch.num_frame,null}}`` (bool) adapt data configs to the arch."""
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
