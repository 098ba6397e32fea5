"""The Trainer every app builds: ``cfg.trainer`` with checkpoints written atomically and a precision
that fits the machine (:func:`vsrlab.utils.precision.resolve_precision`)."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks.progress import ProgressBar

from vsrlab.run.checkpoints import AtomicCheckpointIO
from vsrlab.utils.precision import resolve_precision

log = logging.getLogger(__name__)


def on_cuda(accelerator: Any) -> bool:
    """Whether the Trainer's ``accelerator`` runs on CUDA."""
    name = str(accelerator)
    return name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available())


def build_trainer(cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with atomic checkpoint writes; ``trainer.precision=auto`` resolved
    for the machine, and a warning for bf16 on a CPU without native bf16."""
    accelerator = cfg.trainer.get("accelerator")
    precision, warning = resolve_precision(cfg.trainer.get("precision", "32-true"), on_cuda(accelerator))
    if warning:
        log.warning(warning)
    if cfg.trainer.get("enable_progress_bar") is False and kwargs.get("callbacks"):
        # Lightning refuses a progress-bar callback with the bar turned off: the switch wins
        kwargs["callbacks"] = [c for c in kwargs["callbacks"] if not isinstance(c, ProgressBar)]
    return instantiate(cfg.trainer, plugins=[AtomicCheckpointIO()], precision=precision, **kwargs)
