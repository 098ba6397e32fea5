"""The layer every app uses and none bypasses: process set-up and config directory
(:mod:`~vsrlab.engine.setup`), OmegaConf resolvers, DDP rank commands, loggers and W&B, the Trainer, the
device, and the one model loader (:mod:`~vsrlab.engine.loading`).

Its names are imported on first use (``from vsrlab.engine import load`` works as usual), so that a
console entry point that only needs :data:`CONFIG_DIR` starts without importing torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CONFIG_DIR": "paths",
    "RenamedKeyError": "setup",
    "build_trainer": "trainer",
    "finish_wandb": "loggers",
    "init": "setup",
    "instantiate_loggers": "loggers",
    "load": "loading",
    "load_model": "loading",
    "module_from_checkpoint": "loading",
    "refuse_renamed_keys": "setup",
    "resolve_device": "device",
    "setup_run": "setup",
    "sweep_context": "loggers",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vsrlab.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vsrlab.engine.{_WHERE[name]}"), name)
