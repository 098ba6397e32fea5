"""BasicVSR++ (Chan et al., "BasicVSR++: Improving Video Super-Resolution with Enhanced
Propagation and Alignment", CVPR 2022).

Four propagation branches run in turn over the clip (backward_1, forward_1, backward_2,
forward_2), each seeing the spatial features and the outputs of all earlier branches
(second-order grid propagation, Sec. 3.1, Eq. 1-2). Every step aligns the features of the
two previous steps to the current frame with one deformable convolution whose offsets are
residues of at most ``max_residue_magnitude`` pixels around the optical flow
(flow-guided deformable alignment, Sec. 3.2, Eq. 3-6, Fig. 3).

Parameter names, argument names and behaviour follow BasicSR's ``BasicVSRPlusPlus``;
MMagic's ``BasicVSRPlusPlusNet`` checkpoints load through :func:`vsrlab.archs.load_pretrained`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ConvResidualBlocks
from vsrlab.archs.contract import Temporal
from vsrlab.archs.propagation import (
    BRANCHES,
    check_flow_size,
    is_mirror_extended,
    neighbour_flows,
    second_order_flow,
)
from vsrlab.archs.spynet_arch import SPyNet
from vsrlab.ops import DeformableAlignment, flow_warp


class SecondOrderDeformableAlignment(DeformableAlignment):
    """Flow-guided deformable alignment of two propagated features at once (Sec. 3.2, Fig. 3).

    ``forward(x, extra_feat, flow_1, flow_2)``:

    - ``x`` ``(B, 2C, H, W)``: the features of the previous two steps, ``cat(f_{i-1}, f_{i-2})``;
    - ``extra_feat`` ``(B, 3C, H, W)``: ``cat(warp(f_{i-1}, flow_1), g_i, warp(f_{i-2}, flow_2))``,
      the flow-warped features and the current frame's features (Eq. 3);
    - ``flow_1``, ``flow_2`` ``(B, 2, H, W)``: flows ``(x, y)`` from frame ``i`` to ``i-1`` and ``i-2``.

    Four 3x3 convolutions on ``cat(extra_feat, flow_1, flow_2)`` predict the residue offsets
    and masks (Eq. 4); offsets are ``max_residue_magnitude * tanh(o)`` plus the flow, ``flow_1``
    for the first half of the deformable groups and ``flow_2`` for the second (Eq. 5-6); a 3x3
    modulated deformable convolution maps the ``2C`` channels to ``out_channels``.
    Parameters: ``weight`` ``(out, 2C, 3, 3)``, ``bias``, ``conv_offset.{0,2,4,6}``.

    Args:
        in_channels: ``2C``; divisible by ``deformable_groups``.
        out_channels: ``C`` (also the width of the offset network).
        deformable_groups: groups of channels with their own offsets; even (half per flow).
        max_residue_magnitude: bound on the learned residue to the flow, in pixels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        deformable_groups: int = 16,
        max_residue_magnitude: float = 10,
    ) -> None:
        if deformable_groups % 2:
            raise ValueError(f"deformable_groups must be even (half per flow), got {deformable_groups}")
        conv_offset = nn.Sequential(
            nn.Conv2d(3 * out_channels + 4, out_channels, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(out_channels, 27 * deformable_groups, 3, 1, 1),
        )
        super().__init__(
            in_channels,
            out_channels,
            3 * out_channels + 4,
            offset_groups=deformable_groups,
            num_offsets=9,
            modulated=True,
            offset_base="kernel",
            max_residue_magnitude=max_residue_magnitude,
            conv_offset=conv_offset,
        )

    def forward(
        self,
        x: Tensor,
        extra_feat: Tensor,
        flow_1: Tensor,  # type: ignore[override]
        flow_2: Tensor,
    ) -> Tensor:
        """``(B, 2C, H, W)`` -> ``(B, out_channels, H, W)``; see the class docstring."""
        cond = torch.cat([extra_feat, flow_1, flow_2], dim=1)
        return super().forward(x, cond, flow=torch.cat([flow_1, flow_2], dim=1))


class BasicVSRPlusPlus(nn.Module):
    """BasicVSR++: clip ``(B, T, 3, h, w)`` in ``[0, 1]`` -> ``(B, T, 3, 4h, 4w)``.

    With ``is_low_res_input=False`` (deblurring, compressed-video enhancement) the input is
    at full resolution: two stride-2 convolutions bring the features to ``h/4, w/4``, flows
    are computed on the input bicubically downsampled by 4, and the output has the input size.

    SPyNet needs the (downsampled) frames to be at least 64x64. A clip whose second half is the
    first half reversed (the mirror padding used for Vimeo-90K-T) reuses the backward flows for
    the forward branches; ``is_mirror_extended`` records whether the last input was one.

    Args:
        mid_channels: feature channels C.
        num_blocks: residual blocks per propagation branch.
        max_residue_magnitude: bound of the offset residue to the flow (Eq. 6), pixels.
        is_low_res_input: x4 super-resolution (True) or same-size restoration (False).
        spynet_path: SPyNet weights to load (BasicSR or MMagic layout).
        cpu_cache_length: clips longer than this keep features and flows in CPU memory and move
            each to the input's device only when needed (saves GPU memory on long clips, costs
            speed); the output is then returned on the CPU.
        deformable_groups: deformable groups of each alignment (16 in the paper; not a BasicSR
            argument, exposed for small test models).
    """

    temporal: ClassVar[Temporal] = "recurrent"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    # activation checkpointing with model.checkpointing=true (vsrlab.models.speed): the per-call blocks
    checkpoint_modules = ("backbone.*",)

    def __init__(
        self,
        mid_channels: int = 64,
        num_blocks: int = 7,
        max_residue_magnitude: float = 10,
        is_low_res_input: bool = True,
        spynet_path: str | Path | None = None,
        cpu_cache_length: int = 100,
        deformable_groups: int = 16,
    ) -> None:
        super().__init__()
        self.mid_channels = mid_channels
        self.is_low_res_input = is_low_res_input
        self.cpu_cache_length = cpu_cache_length
        self.is_mirror_extended = False
        self.cpu_cache = False

        self.spynet = SPyNet(load_path=spynet_path)
        if is_low_res_input:
            self.feat_extract: nn.Module = ConvResidualBlocks(3, mid_channels, 5)
        else:
            self.feat_extract = nn.Sequential(
                nn.Conv2d(3, mid_channels, 3, 2, 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(mid_channels, mid_channels, 3, 2, 1),
                nn.LeakyReLU(0.1, inplace=True),
                ConvResidualBlocks(mid_channels, mid_channels, 5),
            )

        self.deform_align = nn.ModuleDict()
        self.backbone = nn.ModuleDict()
        for i, name in enumerate(BRANCHES):
            self.deform_align[name] = SecondOrderDeformableAlignment(
                2 * mid_channels, mid_channels, deformable_groups, max_residue_magnitude
            )
            # input: spatial features, the i earlier branches, the aligned propagated feature
            self.backbone[name] = ConvResidualBlocks((2 + i) * mid_channels, mid_channels, num_blocks)

        self.reconstruction = ConvResidualBlocks(5 * mid_channels, mid_channels, 5)
        self.upconv1 = nn.Conv2d(mid_channels, mid_channels * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(mid_channels, 64 * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def check_if_mirror_extended(self, lqs: Tensor) -> bool:
        """Set and return ``is_mirror_extended`` (:func:`~vsrlab.archs.propagation.is_mirror_extended`)."""
        self.is_mirror_extended = is_mirror_extended(lqs)
        return self.is_mirror_extended

    def compute_flow(self, lqs: Tensor) -> tuple[Tensor, Tensor]:
        """``(flows_forward, flows_backward)`` of :func:`~vsrlab.archs.propagation.neighbour_flows`."""
        return neighbour_flows(self.spynet, lqs, self.is_mirror_extended)

    def propagate(
        self, feats: dict[str, list[Tensor]], flows: Tensor, name: str, device: torch.device
    ) -> None:
        """Run branch ``name`` over the clip and store its features in ``feats[name]`` (Eq. 1-2).

        ``feats`` maps ``'spatial'`` and earlier branches to per-frame ``(B, C, h, w)``
        features in frame order; ``flows`` ``(B, T-1, 2, h, w)`` are the flows of this
        direction (``flows_backward`` or ``flows_forward`` of :meth:`compute_flow`).
        """
        b, _, _, h, w = flows.shape
        t = len(feats["spatial"])
        backward = name.startswith("backward")
        order = range(t - 1, -1, -1) if backward else range(t)
        step_back = 1 if backward else -1  # frame offset of the previous step
        earlier = [k for k in feats if k not in ("spatial", name)]
        out: list[Tensor | None] = [None] * t
        cache = self._cache_device(device)
        feat_prop = torch.zeros(b, self.mid_channels, h, w, device=device, dtype=flows.dtype)
        for step, idx in enumerate(order):
            feat_current = feats["spatial"][idx].to(device)
            if step > 0:
                # flows[:, k] connects frames k and k+1, in this branch's direction
                flow_k = idx if backward else idx - 1
                flow_n1 = flows[:, flow_k].to(device)
                cond_n1 = flow_warp(feat_prop, flow_n1)
                if step > 1:
                    feat_n2 = out[idx + 2 * step_back].to(device)  # type: ignore[union-attr]
                    # flow to the frame two steps back: compose the two one-step flows
                    flow_n2 = second_order_flow(flow_n1, flows[:, flow_k + step_back].to(device))
                    cond_n2 = flow_warp(feat_n2, flow_n2)
                else:
                    feat_n2, flow_n2, cond_n2 = (
                        torch.zeros_like(feat_prop),
                        torch.zeros_like(flow_n1),
                        torch.zeros_like(cond_n1),
                    )
                cond = torch.cat([cond_n1, feat_current, cond_n2], dim=1)
                feat_prop = self.deform_align[name](
                    torch.cat([feat_prop, feat_n2], dim=1), cond, flow_n1, flow_n2
                )
            others = [feats[k][idx].to(device) for k in earlier]
            feat = torch.cat([feat_current, *others, feat_prop], dim=1)
            feat_prop = feat_prop + self.backbone[name](feat)
            out[idx] = feat_prop.to(cache)
        feats[name] = out  # type: ignore[assignment]

    def upsample(self, lqs: Tensor, feats: dict[str, list[Tensor]], device: torch.device) -> Tensor:
        """Reconstruct every frame from the concatenated branch features: ``(B, T, 3, 4h', 4w')``."""
        cache = self._cache_device(device)
        outputs = []
        for i in range(lqs.shape[1]):
            hr = torch.cat([feats[k][i].to(device) for k in ("spatial", *BRANCHES)], dim=1)
            hr = self.reconstruction(hr)
            hr = self.lrelu(self.pixel_shuffle(self.upconv1(hr)))
            hr = self.lrelu(self.pixel_shuffle(self.upconv2(hr)))
            hr = self.conv_last(self.lrelu(self.conv_hr(hr)))
            lq = lqs[:, i].to(device)
            hr = hr + (self.img_upsample(lq) if self.is_low_res_input else lq)
            outputs.append(hr.to(cache))
        return torch.stack(outputs, dim=1)

    def _cache_device(self, device: torch.device) -> torch.device:
        return torch.device("cpu") if self.cpu_cache else device

    def forward(self, lqs: Tensor) -> Tensor:
        """``lqs`` ``(B, T, 3, h, w)``, T >= 2 -> ``(B, T, 3, 4h, 4w)`` (``(B, T, 3, h, w)`` when
        ``is_low_res_input`` is False)."""
        if lqs.dim() != 5 or lqs.shape[2] != 3 or lqs.shape[1] < 2:
            raise ValueError(
                f"BasicVSRPlusPlus expects clips (B, T, 3, h, w) with T >= 2, got {tuple(lqs.shape)}"
            )
        b, t, c, h, w = lqs.shape
        if not self.is_low_res_input and (h % 4 or w % 4):
            raise ValueError(
                f"with is_low_res_input=False the frame size must be a multiple of 4, got {h}x{w}"
            )
        flow_h, flow_w = (h, w) if self.is_low_res_input else (h // 4, w // 4)
        check_flow_size(
            "BasicVSR++",
            flow_h,
            flow_w,
            "input frames" if self.is_low_res_input else "input frames downsampled by 4",
        )
        device = lqs.device
        self.cpu_cache = t > self.cpu_cache_length
        cache = self._cache_device(device)

        if self.is_low_res_input:
            lqs_flow = lqs
        else:
            lqs_flow = F.interpolate(lqs.reshape(-1, c, h, w), scale_factor=0.25, mode="bicubic").view(
                b, t, c, flow_h, flow_w
            )
        self.check_if_mirror_extended(lqs)

        if self.cpu_cache:
            spatial = [self.feat_extract(lqs[:, i]).to(cache) for i in range(t)]
        else:
            feats_ = self.feat_extract(lqs.reshape(-1, c, h, w))
            feats_ = feats_.view(b, t, *feats_.shape[1:])
            spatial = list(feats_.unbind(1))
        feats: dict[str, list[Tensor]] = {"spatial": spatial}

        flows_forward, flows_backward = (f.to(cache) for f in self.compute_flow(lqs_flow))
        for name in BRANCHES:
            flows = flows_backward if name.startswith("backward") else flows_forward
            self.propagate(feats, flows, name, device)
        return self.upsample(lqs, feats, device)
