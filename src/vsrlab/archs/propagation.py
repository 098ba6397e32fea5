"""Pieces shared by the bidirectional recurrent networks that propagate over SPyNet flows
(BasicVSR++, PSRT-recurrent): mirror detection and the flows between neighbouring frames."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.ops.warp import flow_warp

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")
MIN_FLOW_SIZE = 64


def is_mirror_extended(lqs: Tensor) -> bool:
    """Whether ``lqs`` ``(B, T, C, h, w)`` is mirror-padded: T even and frame ``i`` equals frame
    ``T-1-i`` (the padding used for Vimeo-90K-T); its forward flows are then the backward ones
    reversed."""
    t = lqs.shape[1]
    return t % 2 == 0 and torch.equal(lqs[:, : t // 2], lqs[:, t // 2 :].flip(1))


def neighbour_flows(spynet: nn.Module, lqs: Tensor, mirror_extended: bool) -> tuple[Tensor, Tensor]:
    """Flows between neighbours of ``lqs`` ``(B, T, 3, h, w)``, each ``(B, T-1, 2, h, w)``.

    Returns ``(flows_forward, flows_backward)``: ``flows_forward[:, i]`` goes from frame ``i+1``
    to frame ``i`` (used by forward branches), ``flows_backward[:, i]`` from frame ``i`` to frame
    ``i+1``.
    """
    b, t, c, h, w = lqs.shape
    earlier = lqs[:, :-1].reshape(-1, c, h, w)
    later = lqs[:, 1:].reshape(-1, c, h, w)
    flows_backward = spynet(earlier, later).view(b, t - 1, 2, h, w)
    if mirror_extended:
        flows_forward = flows_backward.flip(1)
    else:
        flows_forward = spynet(later, earlier).view(b, t - 1, 2, h, w)
    return flows_forward, flows_backward


def second_order_flow(flow_n1: Tensor, flow_n2: Tensor) -> Tensor:
    """The flow two steps back, ``flow_n1 + warp(flow_n2, flow_n1)``: ``(B, 2, h, w)`` each."""
    return flow_n1 + flow_warp(flow_n2, flow_n1)


def check_flow_size(name: str, height: int, width: int, what: str = "input frames") -> None:
    """SPyNet needs frames of at least 64x64: a clear error otherwise."""
    if height < MIN_FLOW_SIZE or width < MIN_FLOW_SIZE:
        raise ValueError(
            f"{name} needs {what} of at least {MIN_FLOW_SIZE}x{MIN_FLOW_SIZE} for SPyNet, "
            f"got {height}x{width} (h x w)"
        )
