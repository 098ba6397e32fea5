"""``model.flow_source``: where a network that aligns with optical flow gets its flow.

``null`` (default): the network computes its own (its SPyNet). ``batch``: the flows come with the data
and are passed to the network's ``forward(x, flows=...)``, an oracle-flow ablation on the synthetic
clips, whose true flow is known: in training the window's ``flow`` ``(B, T, 2, h, w)`` (from the centre
frame to each frame), in clip inference each window's slice of the clip's ``flow_pairs``
``(L, L, 2, h, w)`` (:func:`vsrlab.inference.clip.window_flows`). Sliding-window networks only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import accepts_flows, centre_frame, is_recurrent, uses_flows

CONFIG_KEY = "model.flow_source"
FLOW_SOURCES = ("batch",)


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
