"""``model.flow_source``: where a network that aligns with optical flow gets its flow.

``null`` (default): the network computes its own (its SPyNet). ``batch``: the flows come with the data
and are passed to the network's ``forward(x, flows=...)``, an oracle-flow ablation on the synthetic
clips, whose true flow is known: in training the window's ``flow`` ``(B, T, 2, h, w)`` (from the centre
frame to each frame), in clip inference each window's slice of the clip's ``flow_pairs``
``(L, L, 2, h, w)`` (:func:`vsrlab.inference.clip.window_flows`). Sliding-window networks only.

``model.flow_error`` corrupts that prior: a smooth random field (:func:`smooth_flow_error`) whose RMS
end-point error is ``flow_error`` LR pixels is added to every flow except a frame's flow to itself (UDA
Section 4.2's question: do more offsets help when the flow is wrong?). Its draws depend only on the
training step or the test clip's index, so every row and seed of a sweep sees the same errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.contract import accepts_flows, centre_frame, is_recurrent, uses_flows

CONFIG_KEY = "model.flow_source"
FLOW_SOURCES = ("batch",)
ERROR_GRID = 4  # control points per side of the smooth error field: one smooth bump per ~quarter frame


def check_flow_source(source: str | None, net: nn.Module) -> str | None:
    """``source`` if ``net`` can take flows from it; raises naming :data:`CONFIG_KEY` otherwise."""
    if source is None:
        return None
    name = type(net).__name__
    if source not in FLOW_SOURCES:
        raise ValueError(f"{CONFIG_KEY} must be null or one of {FLOW_SOURCES}, got {source!r}")
    if is_recurrent(net):
        raise ValueError(
            f"{CONFIG_KEY}={source}: {name} is recurrent; only sliding-window networks take flows"
        )
    if not accepts_flows(net):
        raise ValueError(f"{CONFIG_KEY}={source}: {name}.forward takes no flows argument")
    if not uses_flows(net):
        raise ValueError(f"{CONFIG_KEY}={source}: this {name} uses no flows (its flow options are off)")
    num_frame = int(net.num_frame)
    if centre_frame(net) != num_frame // 2:
        raise ValueError(
            f"{CONFIG_KEY}={source}: the data's flows start from the window's middle frame "
            f"({num_frame // 2}), but {name} super-resolves frame {net.center_frame_idx}"
        )
    return source


def check_flow_error(rms_px: float, source: str | None) -> float:
    """``model.flow_error`` as a float; it needs flows from the data (``model.flow_source=batch``)."""
    rms_px = float(rms_px)
    if rms_px < 0:
        raise ValueError(f"model.flow_error is an RMS end-point error in LR pixels (>= 0), got {rms_px}")
    if rms_px and source is None:
        raise ValueError(f"model.flow_error={rms_px} corrupts the data's flows: set {CONFIG_KEY}=batch")
    return rms_px


def batch_flows(batch: Mapping[str, Any], key: str, source: str | None, what: str = "batch") -> Tensor | None:
    """The flows ``batch[key]`` when ``source`` is ``batch``, None when it is None; raises naming
    :data:`CONFIG_KEY` when ``what`` (the batch, a video stream) has none."""
    if source is None:
        return None
    if key not in batch:
        raise ValueError(
            f"{CONFIG_KEY}={source} but the {what} has no {key!r}: only the synthetic clips carry their "
            "true flow ('flow' in training windows, 'flow_pairs' in evaluation clips; VideoDataset's "
            "flow_root gives training windows a 'flow')"
        )
    return batch[key]


def smooth_flow_error(shape: tuple[int, ...], rms_px: float, seed: int, grid: int = ERROR_GRID) -> Tensor:
    """A smooth random flow error of ``shape`` ``(..., 2, h, w)``: Gaussian displacements on a
    ``grid x grid`` lattice, bicubically interpolated to ``h x w``, each field scaled so that its RMS
    end-point error is ``rms_px`` (float32, CPU; the same ``seed`` gives the same field)."""
    *lead, two, height, width = shape
    if two != 2:
        raise ValueError(f"flows are (..., 2, h, w), got shape {tuple(shape)}")
    generator = torch.Generator().manual_seed(int(seed))
    coarse = torch.randn(math.prod(lead), 2, grid, grid, generator=generator)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    rms = field.square().sum(1).mean((-2, -1)).sqrt().clamp_min(1e-12)
    return (field * (rms_px / rms)[:, None, None, None]).reshape(shape)


def corrupt_flows(flows: Tensor, rms_px: float, seed: int, identity: Tensor) -> Tensor:
    """``flows`` ``(..., 2, h, w)`` plus :func:`smooth_flow_error`, except where ``identity`` (a bool
    tensor of the leading shape: a frame's flow to itself, known exactly) is set."""
    if rms_px <= 0:
        return flows
    error = smooth_flow_error(tuple(flows.shape), rms_px, seed).to(flows)
    return flows + error * (~identity).to(flows)[..., None, None, None]
