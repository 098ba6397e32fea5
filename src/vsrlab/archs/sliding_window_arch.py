"""A compact sliding-window VSR network with G x N deformable alignment (vsrlab's default).

Structure follows EDVR without its pyramid and attention (Wang et al., CVPR-W 2019, Fig. 2)
so that alignment is the only temporal mechanism under study:

1. feature extraction per frame (conv + ``num_extract_block`` residual blocks);
2. alignment of every frame's features to the centre frame's with
   :class:`vsrlab.ops.DeformableAlignment`: offsets predicted from the concatenated neighbour
   and centre features (G offset groups x N offsets; N = 9 on the kernel grid is a 3x3 DCNv2,
   G = N = 1 is flow-based alignment), or no alignment at all (``align_type='none'``); given flows
   (``forward(x, flows)``, e.g. the synthetic clips' true flow, ``model.flow_source=batch``), the
   offsets are added to them (``flow_guided``, BasicVSR++ Eq. 5), or ``align_type='flow'`` warps the
   features with them and learns nothing for alignment (the true-flow rows of the benchmark);
   ``align_type='image_flow'`` warps the LR frames instead, before step 1 (image alignment, UDA Table 4);
3. fusion of the aligned frames by a 1x1 convolution, initialised to pass the centre frame's
   features, the neighbours' weights at a tenth of PyTorch's default, so the network starts close
   to a single-frame SR network and draws on the neighbours as their alignment becomes useful
   (with a full random init, unaligned neighbours blur the fused features and training on 3-frame
   windows learns about half as fast; with the neighbours' weights at zero, no gradient reaches
   their alignment at the first step);
4. reconstruction (``num_reconstruct_block`` residual blocks) and one pixel-shuffle to the
   output scale, added to the centre frame upsampled with MATLAB bicubic, so that training
   starts from the bicubic baseline (EDVR adds a bilinear upsampling instead). The last
   convolution starts at a hundredth of PyTorch's default, so the network initially is the bicubic
   baseline to within a fraction of a grey level, and every layer, the alignment included, receives
   gradient from the first step (zero there, nothing before it would; with the full default
   init, training sits on a plateau for the first couple of hundred iterations).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ResidualBlockNoBN, UpsampleOneStep, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.ops import DeformableAlignment, flow_warp, pyramid_correlation
from vsrlab.ops.resize import matlab_imresize_tensor

#: scale of PyTorch's default init of the neighbours' fusion weights and of the last convolution
NEIGHBOUR_FUSION_SCALE = 0.1
RESIDUAL_SCALE = 0.01
ALIGN_TYPES = ("deformable", "flow", "image_flow", "none")


class SlidingWindowVSR(nn.Module):
    """Compact sliding-window VSR with configurable alignment.

    Args:
        num_in_ch, num_out_ch: image channels.
        num_feat: feature channels.
        num_frame: frames in the input window.
        center_frame_idx: index of the frame to super-resolve (default ``num_frame // 2``).
        num_extract_block, num_reconstruct_block: residual blocks before alignment / after fusion.
        align_type: ``'deformable'`` (G x N alignment), ``'flow'`` (features warped by the given flows,
            bilinear), ``'image_flow'`` (the LR frames warped by them before feature extraction, UDA
            Table 4's image alignment) or ``'none'`` (frames fused unaligned).
        deformable_groups: G, offset groups.
        num_offsets: N, offsets per group.
        modulated: predict DCNv2 masks.
        offset_base: ``'auto'``, ``'kernel'`` or ``'zero'`` (see :class:`DeformableAlignment`).
        flow_guided: add the given flows to the deformable offsets (``align_type='deformable'``).
        offset_levels: levels of the offset predictor (1: full resolution only).
        cost_volume_radius: radius of the correlation given to the offset predictor (0: none).
        upscale: SR factor.
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = ("deformable_groups", "num_offsets")

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 32,
        num_frame: int = 5,
        center_frame_idx: int | None = None,
        num_extract_block: int = 2,
        num_reconstruct_block: int = 4,
        align_type: Literal["deformable", "flow", "image_flow", "none"] = "deformable",
        deformable_groups: int = 4,
        num_offsets: int = 9,
        modulated: bool = True,
        offset_base: Literal["auto", "kernel", "zero"] = "auto",
        upscale: int = 4,
        flow_guided: bool = False,
        offset_levels: int = 1,
        cost_volume_radius: int = 0,
    ) -> None:
        super().__init__()
        if align_type not in ALIGN_TYPES:
            raise ValueError(f"align_type must be one of {ALIGN_TYPES}, got {align_type!r}")
        self.num_frame = num_frame
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        self.upscale = upscale
        self.align_type = align_type
        if flow_guided and align_type != "deformable":
            raise ValueError(f"flow_guided adds flows to deformable offsets; align_type is {align_type!r}")
        self.flow_guided = bool(flow_guided)
        if offset_levels < 1:
            raise ValueError(f"offset_levels must be >= 1, got {offset_levels}")
        self.offset_levels, self.cost_volume_radius = offset_levels, cost_volume_radius
        cost_channels = offset_levels * (2 * cost_volume_radius + 1) ** 2 if cost_volume_radius else 0

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(ResidualBlockNoBN, num_extract_block, num_feat=num_feat)
        if align_type == "deformable":
            self.offset_conv1 = nn.Conv2d(2 * num_feat + cost_channels, num_feat, 3, 1, 1)
            self.offset_conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            # coarser levels: offset_down[i] halves level i's condition, offset_fuse[i] merges level
            # i + 1's (upsampled) into it
            self.offset_down = nn.ModuleList(
                nn.Conv2d(num_feat, num_feat, 3, 2, 1) for _ in range(offset_levels - 1)
            )
            self.offset_fuse = nn.ModuleList(
                nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1) for _ in range(offset_levels - 1)
            )
            self.dcn = DeformableAlignment(
                num_feat,
                num_feat,
                num_feat,
                offset_groups=deformable_groups,
                num_offsets=num_offsets,
                modulated=modulated,
                offset_base=offset_base,
            )
        self.fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        nn.init.zeros_(self.fusion.bias)
        with torch.no_grad():
            self.fusion.weight.mul_(NEIGHBOUR_FUSION_SCALE)
            centre = slice(self.center_frame_idx * num_feat, (self.center_frame_idx + 1) * num_feat)
            self.fusion.weight[:, centre, 0, 0] = torch.eye(num_feat)
        self.reconstruction = make_layer(ResidualBlockNoBN, num_reconstruct_block, num_feat=num_feat)
        self.upsample = UpsampleOneStep(upscale, num_feat, num_out_ch)
        with torch.no_grad():
            self.upsample[0].weight.mul_(RESIDUAL_SCALE)
        nn.init.zeros_(self.upsample[0].bias)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    @property
    def uses_flows(self) -> bool:
        """Whether ``forward`` needs ``flows`` (``align_type`` ``'flow'`` or ``'image_flow'``, or
        ``flow_guided``)."""
        return self.align_type in ("flow", "image_flow") or self.flow_guided

    def align(self, feat: Tensor, ref: Tensor, flow: Tensor | None = None) -> Tensor:
        """Align ``feat`` ``(B, F, h, w)`` to ``ref`` ``(B, F, h, w)``; ``flow`` ``(B, 2, h, w)``: from
        ``ref``'s pixels to ``feat``'s (added to the offsets)."""
        pair = [feat, ref]
        if self.cost_volume_radius:
            pair.append(pyramid_correlation(ref, feat, self.cost_volume_radius, self.offset_levels))
        cond = self.lrelu(self.offset_conv1(torch.cat(pair, dim=1)))
        levels = [self.lrelu(self.offset_conv2(cond))]
        for down in self.offset_down:
            levels.append(self.lrelu(down(levels[-1])))
        cond = levels.pop()
        for fuse in reversed(self.offset_fuse):
            fine = levels.pop()
            up = F.interpolate(cond, size=fine.shape[-2:], mode="bilinear", align_corners=False)
            cond = self.lrelu(fuse(torch.cat([fine, up], dim=1)))
        return self.lrelu(self.dcn(feat, cond, flow))

    def forward(self, x: Tensor, flows: Tensor | None = None) -> Tensor:
        """``(B, T, C, h, w)`` LR window -> ``(B, C, s*h, s*w)`` SR centre frame.

        Args:
            flows: ``(B, T, 2, h, w)`` from the centre frame to each frame (LR pixels, ``(x, y)``;
                zero at the centre): required by ``align_type`` ``'flow'`` and ``'image_flow'`` and by
                ``flow_guided``, ignored otherwise.
        """
        b, t, c, h, w = x.shape
        if t != self.num_frame:
            raise ValueError(f"expected windows of {self.num_frame} frames, got {t}")
        if flows is None and self.uses_flows:
            raise ValueError(f"align_type={self.align_type!r} needs flows (model.flow_source=batch)")
        flows = flows if self.uses_flows else None
        if flows is not None and flows.shape != (b, t, 2, h, w):
            raise ValueError(
                f"flows must be (B, T, 2, h, w) of the window {tuple(x.shape)}, got {tuple(flows.shape)}"
            )
        center = x[:, self.center_frame_idx]
        if self.align_type == "image_flow":
            x = flow_warp(x.reshape(b * t, c, h, w), flows.reshape(b * t, 2, h, w)).view(b, t, c, h, w)
        feat = self.lrelu(self.conv_first(x.reshape(b * t, c, h, w)))
        feat = self.feature_extraction(feat).view(b, t, -1, h, w)
        if self.align_type == "deformable":
            ref = feat[:, self.center_frame_idx]
            # all frames, the centre one too, go through the same alignment (as EDVR's PCD)
            frames = feat.reshape(b * t, -1, h, w)
            refs = ref.unsqueeze(1).expand(-1, t, -1, -1, -1).reshape(b * t, -1, h, w)
            flow = None if flows is None else flows.reshape(b * t, 2, h, w)
            feat = self.align(frames, refs, flow).view(b, t, -1, h, w)
        elif self.align_type == "flow":
            feat = flow_warp(feat.reshape(b * t, -1, h, w), flows.reshape(b * t, 2, h, w))
            feat = feat.view(b, t, -1, h, w)
        out = self.lrelu(self.fusion(feat.reshape(b, -1, h, w)))
        out = self.upsample(self.reconstruction(out))
        return out + matlab_imresize_tensor(center, self.upscale)
