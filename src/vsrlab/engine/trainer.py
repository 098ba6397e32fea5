"""The Trainer every app builds: ``cfg.trainer`` with checkpoints written atomically."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from vsrlab.run.checkpoints import AtomicCheckpointIO


def build_trainer(cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with atomic checkpoint writes."""
    return instantiate(cfg.trainer, plugins=[AtomicCheckpointIO()], **kwargs)
