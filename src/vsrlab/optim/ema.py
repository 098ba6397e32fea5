"""An exponential moving average of a network's weights, as BasicSR keeps it (``ema_decay``): a copy
of the initial (possibly pretrained) weights, then ``ema = decay * ema + (1 - decay) * weights``
after every optimizer step; before ``start_step`` it follows the weights. Buffers are not averaged
(as BasicSR). The average is torch's :class:`~torch.optim.swa_utils.AveragedModel`, a submodule of
the LightningModule, so it is part of every checkpoint and a resumed run continues it exactly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

EMA_DEFAULTS = {"decay": 0.999, "start_step": 0, "validate": True, "test": True}


def ema_config(ema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``model.ema`` with its defaults, or None when off.

    Raises:
        KeyError: an unknown key (naming it); ValueError: a decay outside (0, 1).
    """
    if not ema:
        return None
    unknown = sorted(set(ema) - set(EMA_DEFAULTS))
    if unknown:
        raise KeyError(f"unknown model.ema keys {unknown}; known: {sorted(EMA_DEFAULTS)}")
    ema = {**EMA_DEFAULTS, **ema}
    if not 0.0 < float(ema["decay"]) < 1.0:
        raise ValueError(f"model.ema.decay must be in (0, 1), got {ema['decay']}")
    return ema


def make_ema(net: nn.Module, decay: float) -> AveragedModel:
    """The average of ``net``'s parameters (a deep copy, never trained)."""
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False).requires_grad_(
        False
    )


@torch.no_grad()
def restart_ema(ema: AveragedModel, net: nn.Module) -> None:
    """Make the average a copy of ``net``'s current weights (a fresh run, BasicSR's ``model_ema(0)``)."""
    ema.n_averaged.zero_()
    ema.update_parameters(net)


@torch.no_grad()
def update_ema(ema: AveragedModel, net: nn.Module, step: int, start_step: int = 0) -> None:
    """After optimizer step ``step`` (1 for the first): blend ``net`` into the average, or copy it
    up to ``start_step``."""
    if step <= start_step:
        for average, current in zip(ema.module.parameters(), net.parameters(), strict=True):
            average.copy_(current)
    else:
        ema.update_parameters(net)
