"""Flow-based sliding-window VSR with N optical flows per neighbour, warping in LR space.

The flow-based baseline of Chan et al., "Understanding Deformable Alignment in Video
Super-Resolution" (AAAI 2021): an EDVR-M-like network (Wang et al., CVPR-W 2019, Fig. 2, without
PCD and TSA) whose alignment is optical-flow warping in LR space, in the spirit of TOFlow (Xue
et al., IJCV 2019: SPyNet flows warp the neighbours to the reference frame before a CNN
restores it). It serves two of the paper's studies:

- Table 2, offset diversity for flow-based alignment: ``num_flows`` = N independent SPyNets each
  estimate a flow from the centre frame to every neighbour; each flow warps the neighbour, the
  N results are concatenated and fused (footnote 3). N = 1 is plain flow-based alignment; with
  N > 1 the flows diverge in training because each copy feeds its own fusion weights.
- Table 4, image- vs feature-level warping (``warp_level``): ``'image'`` warps the LR neighbour
  images and extracts features from the warped images (as TOFlow does), ``'feature'`` extracts
  features first and warps them with the same flows (as deformable alignment does).
- Shi et al. (NeurIPS 2022), the VSR-CNN rows of the CNN vs Transformer table (CNN + image alignment with
  fine-tuned flow; CNN without alignment): the paper does not describe its CNN; vsrlab's is this network,
  ``warp_level='image'`` with the SPyNet trained, and ``warp_level='none'`` (no SPyNet: the frames are
  fused unaligned), ``sweep=vsr_cnn_alignment``.

Unlike BasicSR's ``TOFlow`` (``tof_arch.py``), which warps bicubically pre-upsampled frames with a
BatchNorm SPyNet of 4 levels and restores them with four plain convolutions, this network warps
the LR frames with vsrlab's 6-level :class:`~vsrlab.archs.SPyNet` and super-resolves with EDVR's
reconstruction and upsampling, so that the only difference from the deformable models in the
paper's comparison is the alignment.

Pipeline, for a window ``(B, T, C, h, w)`` with centre frame ``c``:

1. flows ``(B, T, N, 2, h, w)``: SPyNet ``n`` applied to (centre, frame ``t``) for every
   neighbour ``t`` (zero for the centre frame, which is never warped);
2. alignment: each frame ``t`` warped by each of its N flows, at the image or the feature level,
   giving ``T*N`` aligned feature maps (the centre frame's N copies are identical);
3. feature extraction (shared): conv + LeakyReLU(0.1) + ``num_extract_block`` residual blocks;
4. fusion: a 1x1 convolution from ``T*N*num_feat`` to ``num_feat`` channels (EDVR without TSA);
5. reconstruction: ``num_reconstruct_block`` residual blocks, pixel-shuffle x2 stages
   (``upconv1``, ``upconv2`` for x4), ``conv_hr``, ``conv_last``, plus the centre frame
   upsampled bilinearly (as EDVR).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ResidualBlockNoBN, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.archs.spynet_arch import SPyNet
from vsrlab.ops import flow_warp

WarpLevel = Literal["image", "feature", "none"]


class FlowVSR(nn.Module):
    """Sliding-window VSR aligned by ``num_flows`` SPyNet flows per neighbour, in LR space.

    ``forward`` maps ``(B, T, 3, h, w)`` in ``[0, 1]`` to ``(B, 3, s*h, s*w)`` and keeps the flows
    of the call in ``last_flows`` ``(B, T, N, 2, h, w)`` ((x, y) order, zero for the centre frame).
    The SPyNets' parameters sit under ``spynets.`` (BasicVSR-style recipes train them with a
    smaller learning rate and freeze them at first).

    Args:
        num_in_ch, num_out_ch: image channels (SPyNet needs RGB: ``num_in_ch`` must be 3).
        num_feat: feature channels.
        num_frame: frames per window (5 or 7).
        center_frame_idx: frame to super-resolve (default ``num_frame // 2``).
        num_flows: N, independent SPyNets, each giving one flow per neighbour.
        warp_level: ``'image'`` (warp LR images, then extract features), ``'feature'``
            (extract, then warp features) or ``'none'`` (no alignment and no SPyNet; ``num_flows``
            must be 1).
        num_extract_block: residual blocks of the feature extractor.
        num_reconstruct_block: residual blocks after fusion.
        spynet_path: SPyNet checkpoint (BasicSR or MMagic) loaded into every one of the N SPyNets.
        upscale: SR factor, a power of two (one pixel-shuffle x2 stage each).

    Attributes:
        last_flows: flows of the last ``forward``, or ``None`` before the first.
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_frame: int = 5,
        center_frame_idx: int | None = None,
        num_flows: int = 1,
        warp_level: WarpLevel = "feature",
        num_extract_block: int = 5,
        num_reconstruct_block: int = 10,
        spynet_path: str | Path | None = None,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        if num_in_ch != 3:
            raise ValueError(f"SPyNet estimates flow on RGB frames: num_in_ch must be 3, got {num_in_ch}")
        if warp_level not in ("image", "feature", "none"):
            raise ValueError(f"warp_level must be 'image', 'feature' or 'none', got {warp_level!r}")
        if num_flows < 1 or (warp_level == "none" and num_flows != 1):
            raise ValueError(f"num_flows must be >= 1 (1 with warp_level='none'), got {num_flows}")
        num_stages = round(math.log2(upscale)) if upscale >= 2 else 0
        if 2**num_stages != upscale:
            raise ValueError(f"upscale must be a power of two (x2 pixel-shuffle stages), got {upscale}")
        self.num_frame = num_frame
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        self.num_flows, self.warp_level, self.upscale = num_flows, warp_level, upscale
        self.num_upsample = num_stages

        spynets = 0 if warp_level == "none" else num_flows
        self.spynets = nn.ModuleList(SPyNet(load_path=spynet_path) for _ in range(spynets))
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(ResidualBlockNoBN, num_extract_block, num_feat=num_feat)
        self.fusion = nn.Conv2d(num_frame * num_flows * num_feat, num_feat, 1, 1)
        self.reconstruction = make_layer(ResidualBlockNoBN, num_reconstruct_block, num_feat=num_feat)
        for i in range(num_stages):  # EDVR's names: upconv1, upconv2
            self.add_module(f"upconv{i + 1}", nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1))
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

        self.last_flows: Tensor | None = None

    def compute_flows(self, x: Tensor) -> Tensor:
        """Flows ``(B, T, N, 2, h, w)`` from the centre frame to every frame of ``x`` ``(B, T, 3, h, w)``.

        Flow ``[:, t, n]`` is SPyNet ``n``'s, such that ``flow_warp(x[:, t], flow)`` aligns frame
        ``t`` to the centre; the centre frame's flows are zero.
        """
        b, t, c, h, w = x.shape
        ci = self.center_frame_idx
        neighbours = [i for i in range(t) if i != ci]
        supp = x[:, neighbours].reshape(-1, c, h, w)
        ref = x[:, ci : ci + 1].expand(-1, t - 1, -1, -1, -1).reshape(-1, c, h, w)
        flows = torch.stack([spynet(ref, supp) for spynet in self.spynets], dim=1)
        flows = flows.view(b, t - 1, self.num_flows, 2, h, w)
        zero = flows.new_zeros(b, 1, self.num_flows, 2, h, w)
        return torch.cat([flows[:, :ci], zero, flows[:, ci:]], dim=1)

    def warp(self, frames: Tensor, flows: Tensor) -> Tensor:
        """Warp each of ``frames`` ``(B, T, K, h, w)`` by each of its flows ``(B, T, N, 2, h, w)``.

        Returns ``(B, T, N, K, h, w)``; the centre frame is copied, not resampled.
        """
        b, t, k, h, w = frames.shape
        n = flows.shape[2]
        ci = self.center_frame_idx
        neighbours = [i for i in range(t) if i != ci]
        src = frames[:, neighbours].unsqueeze(2).expand(-1, -1, n, -1, -1, -1).reshape(-1, k, h, w)
        warped = flow_warp(src, flows[:, neighbours].reshape(-1, 2, h, w)).view(b, t - 1, n, k, h, w)
        centre = frames[:, ci : ci + 1].unsqueeze(2).expand(-1, -1, n, -1, -1, -1)
        return torch.cat([warped[:, :ci], centre, warped[:, ci:]], dim=1)

    def extract(self, images: Tensor) -> Tensor:
        """Features ``(..., num_feat, h, w)`` of images ``(..., 3, h, w)``."""
        lead, (c, h, w) = images.shape[:-3], images.shape[-3:]
        feat = self.feature_extraction(self.lrelu(self.conv_first(images.reshape(-1, c, h, w))))
        return feat.view(*lead, -1, h, w)

    def align(self, x: Tensor) -> Tensor:
        """Aligned features ``(B, T, N, num_feat, h, w)`` of the window ``x`` ``(B, T, 3, h, w)``
        (``warp_level='none'``: unaligned, N = 1)."""
        if self.warp_level == "none":
            return self.extract(x).unsqueeze(2)
        flows = self.compute_flows(x)
        self.last_flows = flows
        if self.warp_level == "image":
            return self.extract(self.warp(x, flows))
        return self.warp(self.extract(x), flows)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, 3, h, w)`` LR window in ``[0, 1]`` -> ``(B, 3, s*h, s*w)`` SR centre frame."""
        b, t, _, h, w = x.shape
        if t != self.num_frame:
            raise ValueError(f"expected windows of {self.num_frame} frames, got {t}")
        feat = self.fusion(self.align(x).reshape(b, -1, h, w))
        out = self.reconstruction(feat)
        for i in range(self.num_upsample):
            out = self.lrelu(self.pixel_shuffle(getattr(self, f"upconv{i + 1}")(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(
            x[:, self.center_frame_idx], scale_factor=self.upscale, mode="bilinear", align_corners=False
        )
        return out + base
