"""The loss terms of a model's config (:mod:`vsrlab.losses.terms`), built for its network."""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from hydra.utils import instantiate

from vsrlab.archs.contract import returns_aligned_lr
from vsrlab.losses.levels import LevelTerm
from vsrlab.losses.offset_fidelity import OffsetFidelityTerm
from vsrlab.losses.terms import AlignedLRTerm, LossTerm, PixelTerm


def build_loss_terms(
    net: nn.Module,
    loss: dict[str, Any] | None,
    level_weights: list[float] | None = None,
    offset_fidelity: dict[str, Any] | None = None,
    aligned_lr_loss: dict[str, Any] | None = None,
) -> list[LossTerm]:
    """The terms of ``model.loss``, ``model.level_weights``, ``model.offset_fidelity`` and
    ``model.aligned_lr_loss`` for ``net`` (the pixel term first; none without ``model.loss``).

    Raises:
        ValueError: a term that ``net`` cannot serve (the message names the key).
    """
    terms: list[LossTerm] = []
    loss_fn = instantiate(loss) if loss else None
    levels = LevelTerm.from_config(level_weights, net, loss_fn)
    if loss_fn is not None:
        terms.append(levels if levels is not None else PixelTerm(loss_fn))
    fidelity = OffsetFidelityTerm.from_config(offset_fidelity, net)
    if fidelity is not None:
        terms.append(fidelity)
    if aligned_lr_loss:
        if not returns_aligned_lr(net):
            raise ValueError(f"model.aligned_lr_loss: {type(net).__name__} returns no aligned LR frames")
        terms.append(AlignedLRTerm(instantiate(aligned_lr_loss)))
    return terms
