"""``model.neighbours``: what a sliding-window network sees around its centre frame.

``frames`` (default): the window as it is. ``centre``: every window is its centre frame repeated
(and flows given to the network are zero), in training and evaluation alike: the same network with
nothing to gain from its neighbours, the control against which their gain is measured
(``experiments/alignment_benchmark``).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import centre_frame, is_recurrent

CONFIG_KEY = "model.neighbours"
NEIGHBOURS = ("frames", "centre")


def centre_repeated(x: Tensor, centre: int) -> Tensor:
    """``(B, T, C, h, w)`` -> the same shape, every frame ``x[:, centre]``."""
    return x[:, centre : centre + 1].expand_as(x).contiguous()


def _centre_hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    centre = centre_frame(module, args[0].shape[1])
    args = (centre_repeated(args[0], centre), *args[1:])
    if kwargs.get("flows") is not None:
        kwargs = {**kwargs, "flows": kwargs["flows"].new_zeros(kwargs["flows"].shape)}
    return args, kwargs


def apply_neighbours(net: nn.Module, neighbours: str) -> str:
    """Make ``net`` see its windows as ``neighbours`` says (a forward pre-hook for ``centre``; the
    weights and their names are untouched); returns ``neighbours``.

    Raises:
        ValueError: an unknown value, or ``centre`` for a recurrent network, naming :data:`CONFIG_KEY`.
    """
    if neighbours not in NEIGHBOURS:
        raise ValueError(f"{CONFIG_KEY} must be one of {NEIGHBOURS}, got {neighbours!r}")
    if neighbours == "centre":
        if is_recurrent(net):
            raise ValueError(f"{CONFIG_KEY}=centre: {type(net).__name__} is recurrent; windows only")
        net.register_forward_pre_hook(_centre_hook, with_kwargs=True)
    return neighbours
