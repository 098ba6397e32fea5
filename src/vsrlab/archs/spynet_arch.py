"""SPyNet: optical flow by a spatial pyramid of small CNNs (Ranjan & Black, CVPR 2017).

Each of the 6 pyramid levels (coarsest first) doubles the flow of the level below, warps the
neighbour by it and predicts a residual flow from ``[reference, warped neighbour, flow]``
(Sec. 3, Eq. 1-2 of the paper). Parameter layout, ImageNet normalisation and the resizing to a
multiple of 32 follow BasicSR's ``SpyNet``, so its official weights
(``spynet_sintel_final-3d2a1287.pth``; MMagic's ``spynet_20210409-c6c1bd09.pth`` through
:func:`vsrlab.archs.load_pretrained`) load unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.pretrained import load_pretrained
from vsrlab.ops.warp import flow_warp

NUM_LEVELS = 6


class SPyNetBasicModule(nn.Module):
    """One pyramid level: five 7x7 convs 8 -> 32 -> 64 -> 32 -> 16 -> 2 with ReLUs in between.

    Input ``(B, 8, H, W)`` = reference (3) + warped neighbour (3) + upsampled flow (2);
    output ``(B, 2, H, W)`` residual flow. Convs sit at ``basic_module.{0,2,4,6,8}``.
    """

    def __init__(self) -> None:
        super().__init__()
        channels = (8, 32, 64, 32, 16, 2)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:], strict=False)):
            layers.append(nn.Conv2d(cin, cout, 7, 1, 3))
            if i < len(channels) - 2:
                layers.append(nn.ReLU(inplace=False))
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Optical flow from ``ref`` to ``supp``, for images in ``[0, 1]`` RGB of any size.

    ``forward(ref, supp)`` with both ``(B, 3, H, W)`` returns flow ``(B, 2, H, W)`` in pixels,
    ``(x, y)`` order, such that ``flow_warp(supp, flow)`` aligns ``supp`` to ``ref``.
    Inputs are resized (bilinear) to the next multiple of 32 (at least 64) and the flow is
    resized back and rescaled, so very small frames give poor flow (BasicVSR++ asks for at
    least 64x64).

    Args:
        load_path: optional checkpoint (BasicSR or MMagic layout) loaded strictly.
    """

    # MMagic wraps each conv in a ConvModule and counts only convs: ``basic_module.j.conv`` is
    # BasicSR's ``basic_module.(2j)`` (ReLUs take the odd indices)
    MMAGIC_KEY_RENAMES = [
        (
            r"basic_module\.(\d+)\.basic_module\.(\d+)\.conv\.",
            lambda m: f"basic_module.{m[1]}.basic_module.{2 * int(m[2])}.",
        )
    ]

    def __init__(self, load_path: str | Path | None = None) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList(SPyNetBasicModule() for _ in range(NUM_LEVELS))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        if load_path:
            load_pretrained(self, load_path)

    def compute_flow(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow for inputs whose sides are multiples of 32: coarse-to-fine over the pyramid."""
        ref_pyr = [(ref - self.mean) / self.std]
        supp_pyr = [(supp - self.mean) / self.std]
        for _ in range(NUM_LEVELS - 1):
            ref_pyr.append(F.avg_pool2d(ref_pyr[-1], 2, 2, count_include_pad=False))
            supp_pyr.append(F.avg_pool2d(supp_pyr[-1], 2, 2, count_include_pad=False))
        coarsest = ref_pyr[-1]
        flow = coarsest.new_zeros(coarsest.shape[0], 2, coarsest.shape[2] // 2, coarsest.shape[3] // 2)
        for level, module in enumerate(self.basic_module):
            ref_l, supp_l = ref_pyr[NUM_LEVELS - 1 - level], supp_pyr[NUM_LEVELS - 1 - level]
            up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            # the coarsest flow starts at half the coarsest size, rounded down: odd sides need a row/column
            pad_h, pad_w = ref_l.shape[-2] - up.shape[-2], ref_l.shape[-1] - up.shape[-1]
            if pad_h or pad_w:
                up = F.pad(up, [0, pad_w, 0, pad_h], mode="replicate")
            warped = flow_warp(supp_l, up, padding_mode="border")
            flow = module(torch.cat([ref_l, warped, up], dim=1)) + up
        return flow

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        if ref.shape != supp.shape or ref.dim() != 4 or ref.shape[1] != 3:
            raise ValueError(
                f"SPyNet expects two (B, 3, H, W) images of equal shape, got "
                f"{tuple(ref.shape)} and {tuple(supp.shape)}"
            )
        h, w = ref.shape[-2:]
        # sides of 32 or less would leave an empty coarsest level (BasicSR fails there): use 64
        h32, w32 = max(64, 32 * math.ceil(h / 32)), max(64, 32 * math.ceil(w / 32))
        if (h32, w32) != (h, w):
            ref = F.interpolate(ref, size=(h32, w32), mode="bilinear", align_corners=False)
            supp = F.interpolate(supp, size=(h32, w32), mode="bilinear", align_corners=False)
        flow = self.compute_flow(ref, supp)
        if (h32, w32) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            flow = flow * flow.new_tensor([w / w32, h / h32]).view(1, 2, 1, 1)
        return flow


def frozen_spynet(load_path: str | Path | None) -> SPyNet:
    """A SPyNet for measuring flow, never trained: weights from ``load_path`` (random without one),
    eval mode, parameters frozen. The offset-fidelity teacher, the motion of test clips and
    ``vsrlab-analyze tool=offsets`` use it (never as a submodule: it is not saved with a model)."""
    return SPyNet(load_path).eval().requires_grad_(False)


def flow_from_frame(spynet: nn.Module, frames: Tensor, ref: int) -> Tensor:
    """Flow ``(B, T, 2, h, w)`` from frame ``ref`` of ``frames`` ``(B, T, 3, h, w)`` to every frame
    (the convention of the synthetic clips' true flow), computed without gradients."""
    b, t = frames.shape[:2]
    reference = frames[:, ref].unsqueeze(1).expand_as(frames)
    with torch.no_grad():
        flow = spynet(reference.reshape(b * t, *frames.shape[2:]), frames.reshape(b * t, *frames.shape[2:]))
    return flow.view(b, t, 2, *frames.shape[-2:])
