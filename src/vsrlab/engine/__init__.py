"""The layer every app uses and none bypasses: process set-up and config directory
(:mod:`~vsrlab.engine.setup`), OmegaConf resolvers, DDP rank commands, loggers and W&B, the Trainer, the
device, and the one model loader (:mod:`~vsrlab.engine.loading`)."""

from vsrlab.engine.device import resolve_device
from vsrlab.engine.loading import load, load_model, module_from_checkpoint
from vsrlab.engine.loggers import finish_wandb, instantiate_loggers, sweep_context
from vsrlab.engine.setup import CONFIG_DIR, RenamedKeyError, init, refuse_renamed_keys, setup_run
from vsrlab.engine.trainer import build_trainer

__all__ = [
    "CONFIG_DIR",
    "RenamedKeyError",
    "build_trainer",
    "finish_wandb",
    "init",
    "instantiate_loggers",
    "load",
    "load_model",
    "module_from_checkpoint",
    "refuse_renamed_keys",
    "resolve_device",
    "setup_run",
    "sweep_context",
]
