"""Losses and scores of cascaded networks: networks that upscale in x2 levels and can return every
level's output (``forward(x, return_levels=True)`` -> ``[x2, x4, ..., final]``, DKSAN).

``model.level_weights`` (``[w_1, ..., w_L]``, coarse to fine) trains on ``sum_l w_l * loss(level_l,
GT_l)`` with ``GT_l`` the GT resized by MATLAB bicubic (antialiased) to level ``l``'s size; null trains
on the final output only (the DKSAN paper's loss). Either way the PSNR of every level against its
``GT_l`` is logged (``train/psnr_level<l>``, ``val/psnr_level<l>`` on each clip's centre window), so a
cascade shows where it loses detail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import num_levels, returns_levels
from vsrlab.losses.terms import LossTerm, StepOutputs
from vsrlab.ops.resize import matlab_imresize_tensor
from vsrlab.utils.precision import at_least_float32

CONFIG_KEY = "model.level_weights"


def level_targets(target: Tensor, sizes: Sequence[tuple[int, int]]) -> list[Tensor]:
    """``target`` ``(B, C, H, W)`` resized to each of ``sizes`` (MATLAB bicubic; the full size as is)."""
    out = []
    for h, w in sizes:
        if (h, w) == tuple(target.shape[-2:]):
            out.append(target)
            continue
        factor = target.shape[-1] // w
        if target.shape[-1] != w * factor or target.shape[-2] != h * factor:
            raise ValueError(f"a level of size {h}x{w} does not divide the GT's {tuple(target.shape[-2:])}")
        out.append(matlab_imresize_tensor(target, 1.0 / factor))
    return out


def level_psnr(levels: Sequence[Tensor], targets: Sequence[Tensor]) -> list[Tensor]:
    """PSNR (dB, RGB, outputs clamped to [0, 1]) of each level against its target, averaged over the batch."""
    values = []
    for out, gt in zip(levels, targets, strict=True):
        diff = at_least_float32(out.detach()).clamp(0, 1) - at_least_float32(gt)
        mse = diff.square().flatten(1).mean(dim=1)
        values.append((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())
    return values


class LevelTerm(LossTerm):
    """The pixel term of a cascaded network: ``loss_fn`` over its levels (see the module docstring),
    with every level's PSNR as scores (``psnr_level<l>``)."""

    name = "pix"
    needs = frozenset({"levels"})

    def __init__(
        self, weights: Sequence[float] | None, loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    ) -> None:
        self.weights = None if weights is None else [float(w) for w in weights]
        self.loss_fn = loss_fn

    @classmethod
    def from_config(
        cls,
        weights: Sequence[float] | None,
        net: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> LevelTerm | None:
        """None for networks without levels (then ``weights`` must be None, else the error names the key)."""
        if not returns_levels(net):
            if weights is not None:
                name = type(net).__name__
                raise ValueError(f"{CONFIG_KEY}: {name} returns no levels (forward(x, return_levels))")
            return None
        levels = num_levels(net)
        if weights is not None and levels is not None and len(weights) != int(levels):
            name = type(net).__name__
            raise ValueError(f"{CONFIG_KEY} has {len(weights)} weights for the {levels} levels of {name}")
        return cls(weights, loss_fn)

    def __call__(self, step: StepOutputs) -> tuple[Tensor, dict[str, Tensor]]:
        """The pixel loss (weighted over the levels, or of the final level) and each level's PSNR."""
        levels = step.levels
        if levels is None or self.loss_fn is None:
            raise ValueError("the level term needs the network's levels and a pixel loss (model.loss)")
        targets = level_targets(step.target, [tuple(out.shape[-2:]) for out in levels])
        if self.weights is None:
            loss = self.loss_fn(levels[-1], targets[-1])
        else:
            if len(self.weights) != len(levels):
                raise ValueError(f"{CONFIG_KEY} has {len(self.weights)} weights for {len(levels)} levels")
            pairs = zip(self.weights, levels, targets, strict=True)
            loss = sum(w * self.loss_fn(out, gt) for w, out, gt in pairs)
        psnrs = level_psnr(levels, targets)
        return loss, {f"psnr_level{i + 1}": v for i, v in enumerate(psnrs)}
