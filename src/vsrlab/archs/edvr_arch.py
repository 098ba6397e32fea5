"""EDVR: Pyramid, Cascading and Deformable (PCD) alignment + Temporal-Spatial Attention (TSA) fusion.

Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks",
CVPR-W 2019. Module and parameter names, defaults and the forward computation follow BasicSR's
``basicsr/archs/edvr_arch.py``, so a BasicSR EDVR checkpoint loads with ``strict=True``
(``align_type='dcn'``, the default).

Every deformable convolution of the PCD module is a :class:`vsrlab.ops.DeformableAlignment`,
built by :func:`vsrlab.archs.pcd_tsa.make_alignment` from one alignment specification, which makes
the alignment selectable as in Chan et al., "Understanding Deformable Alignment in Video Super-Resolution"
(AAAI 2021): DCN (Table 1), the G x N decomposition (Tables 1-2, Fig. 9/16), flow-based
alignment and image-level warping (Table 4). See :class:`EDVR` for the variants.

Inputs are LR windows ``(B, T, C, h, w)``, frames in ``[0, 1]``; ``h`` and ``w`` must be
multiples of 4 (two stride-2 pyramid levels).
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ResidualBlockNoBN, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.archs.pcd_tsa import (
    ALIGN_TYPES,
    AlignType,
    PCDAlignment,
    TSAFusion,
    broadcast_reference,
    feature_pyramid,
    up2,
)
from vsrlab.ops.alignment import OffsetInit


class PredeblurModule(nn.Module):
    """Pre-deblurring feature extractor (EDVR Sec. 3.1, Fig. 2; for blurry inputs).

    A three-level residual pyramid; with ``hr_in`` two stride-2 convolutions first bring HR
    input to the LR size.

    Args:
        num_in_ch: image channels.
        num_feat: feature channels F.
        hr_in: input at 4x the working resolution.

    ``forward``: ``(N, C, H, W)`` -> ``(N, F, H/s, W/s)``, ``s`` = 4 with ``hr_in`` else 1.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, hr_in: bool = False) -> None:
        super().__init__()
        self.hr_in = hr_in
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        if hr_in:
            self.stride_conv_hr1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
            self.stride_conv_hr2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.stride_conv_l2 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.stride_conv_l3 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.resblock_l3 = ResidualBlockNoBN(num_feat=num_feat)
        self.resblock_l2_1 = ResidualBlockNoBN(num_feat=num_feat)
        self.resblock_l2_2 = ResidualBlockNoBN(num_feat=num_feat)
        self.resblock_l1 = nn.ModuleList([ResidualBlockNoBN(num_feat=num_feat) for _ in range(5)])
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, F, H/s, W/s)``."""
        feat_l1 = self.lrelu(self.conv_first(x))
        if self.hr_in:
            feat_l1 = self.lrelu(self.stride_conv_hr2(self.lrelu(self.stride_conv_hr1(feat_l1))))
        feat_l2 = self.lrelu(self.stride_conv_l2(feat_l1))
        feat_l3 = self.lrelu(self.stride_conv_l3(feat_l2))
        feat_l3 = up2(self.resblock_l3(feat_l3))
        feat_l2 = up2(self.resblock_l2_2(self.resblock_l2_1(feat_l2) + feat_l3))
        for block in self.resblock_l1[:2]:
            feat_l1 = block(feat_l1)
        feat_l1 = feat_l1 + feat_l2
        for block in self.resblock_l1[2:]:
            feat_l1 = block(feat_l1)
        return feat_l1


class EDVR(nn.Module):
    """EDVR for x4 video super-resolution (Wang et al. 2019, Fig. 2).

    Per-frame feature extraction (``conv_first`` + ``num_extract_block`` residual blocks, or the
    pre-deblur module), a 3-level feature pyramid, PCD alignment of every frame (the reference
    too) to the reference frame, TSA fusion (or a 1x1 convolution), ``num_reconstruct_block``
    residual blocks, ``log2(upscale)`` x2 pixel-shuffle stages (two at x4), added to the bilinearly
    upsampled reference frame.

    Args:
        num_in_ch: input image channels.
        num_out_ch: output image channels (must equal ``num_in_ch``: the output is a residual
            over the upsampled input).
        num_feat: feature channels F (64 for EDVR-M, 128 for EDVR-L).
        num_frame: frames T per window.
        deformable_groups: offset groups G of every alignment pack.
        num_extract_block: residual blocks of the feature extraction.
        num_reconstruct_block: residual blocks of the reconstruction (10 EDVR-M, 40 EDVR-L).
        center_frame_idx: reference frame; default ``num_frame // 2``.
        hr_in: input at the output resolution (deblurring); needs ``with_predeblur``, whose
            stride-2 convolutions bring it to 1/4. The output then has the input size.
        with_predeblur: use :class:`PredeblurModule` + a 1x1 convolution instead of ``conv_first``.
        with_tsa: TSA fusion; otherwise a 1x1 convolution over the T*F aligned channels.
        align_type: the alignment of every PCD pack (Chan et al. 2021):

            - ``'dcn'``: modulated deformable convolution, ``num_offsets`` = N offsets on the
              kernel grid per group (N = 9: 3x3 DCNv2, BasicSR's EDVR exactly);
            - ``'decomposed'``: G x N free offsets per pixel (any N), the warped copies fused by a
              1x1 convolution (Tables 1-2, Fig. 9/16: offset diversity);
            - ``'flow'``: flow-based alignment, G = N = 1, no modulation: one warp + 1x1 conv
              (equivalent to ``'decomposed'`` with G = N = 1, ``modulated=False``);
            - ``'image'``: image-level alignment (Table 4): flows as for ``'flow'``; the final
              flow at L1 resolution (the L1 flow composed with the cascade's) warps each
              neighbour's input frame, whose features are re-extracted with the shared
              ``conv_first`` + ``feature_extraction`` (see :meth:`PCDAlignment.forward`).
              Same parameters as ``'flow'``.

            ``'flow'`` and ``'image'`` ignore ``deformable_groups``, ``num_offsets``, ``modulated``.
        num_offsets: N for ``'dcn'`` (an odd square) and ``'decomposed'``.
        modulated: DCNv2 masks for ``'dcn'`` and ``'decomposed'``.
        offset_init: ``'decomposed'`` only: free offsets start at the pixel (``'zero'``) or on the N
            nearest grid positions (``'grid'``; N = 9 then starts as the DCN, Chan et al. Table 1).
        upscale: SR factor, a power of 2: one x2 pixel-shuffle stage per factor of 2 (``upconv1``,
            ``upconv2``, ... as BasicSR names the two of x4). As in BasicSR, the first stage keeps
            ``num_feat`` channels and every later one has 64 (the x4 layout is BasicSR's exactly, so
            official x4 checkpoints load); the DKSAN paper's x16 baseline (Xu et al. 2020, "EDVR with a
            x16 upscale module") is ``upscale=16``: two more 64-channel stages. ``hr_in`` needs 4.

    ``forward``: ``(B, T, C, h, w)`` -> ``(B, C, s*h, s*w)`` for ``s = upscale`` (``(B, C, h, w)`` with
    ``hr_in``); ``h``, ``w`` multiples of 4 (16 with ``hr_in``).
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = ("deformable_groups", "num_offsets")

    # activation checkpointing with model.checkpointing=true (vsrlab.models.speed): the per-call blocks
    checkpoint_modules = ("feature_extraction.*", "reconstruction.*")

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_frame: int = 5,
        deformable_groups: int = 8,
        num_extract_block: int = 5,
        num_reconstruct_block: int = 10,
        center_frame_idx: int | None = None,
        hr_in: bool = False,
        with_predeblur: bool = False,
        with_tsa: bool = True,
        align_type: AlignType = "dcn",
        num_offsets: int = 9,
        modulated: bool = True,
        upscale: int = 4,
        offset_init: OffsetInit = "zero",
    ) -> None:
        super().__init__()
        stages = upscale.bit_length() - 1
        if upscale < 2 or upscale != 1 << stages:
            raise ValueError(f"upscale must be a power of 2 (2, 4, 8, 16, ...), got {upscale}")
        if hr_in and upscale != 4:
            raise ValueError(f"hr_in=True restores the input size with upscale=4, got upscale={upscale}")
        if align_type not in ALIGN_TYPES:
            raise ValueError(f"align_type must be one of {ALIGN_TYPES}, got {align_type!r}")
        if hr_in and not with_predeblur:
            raise ValueError(
                "hr_in=True needs with_predeblur=True (its stride-2 convolutions downsample the input)"
            )
        if num_out_ch != num_in_ch:
            raise ValueError(f"num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch})")
        self.num_frame = num_frame
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        self.hr_in, self.with_predeblur, self.with_tsa = hr_in, with_predeblur, with_tsa
        self.align_type, self.upscale = align_type, upscale

        if with_predeblur:
            self.predeblur = PredeblurModule(num_in_ch, num_feat, hr_in)
            self.conv_1x1 = nn.Conv2d(num_feat, num_feat, 1, 1)
        else:
            self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(ResidualBlockNoBN, num_extract_block, num_feat=num_feat)
        self.conv_l2_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

        self.pcd_align = PCDAlignment(
            num_feat, deformable_groups, align_type, num_offsets, modulated, offset_init
        )
        if with_tsa:
            self.fusion: nn.Module = TSAFusion(num_feat, num_frame, self.center_frame_idx)
        else:
            self.fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)

        self.reconstruction = make_layer(ResidualBlockNoBN, num_reconstruct_block, num_feat=num_feat)
        # BasicSR fixes the channels after the first x2 stage to 64 whatever num_feat is
        self.upsample_stages = stages
        for i in range(stages):
            in_ch = num_feat if i < 2 else 64
            out_ch = num_feat if i == 0 and stages > 1 else 64
            self.add_module(f"upconv{i + 1}", nn.Conv2d(in_ch, out_ch * 4, 3, 1, 1))
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def extract(self, x: Tensor) -> Tensor:
        """L1 features of frames: ``(N, C, h, w)`` -> ``(N, F, h/s, w/s)``, ``s`` = 4 with ``hr_in``."""
        if self.with_predeblur:
            feat = self.conv_1x1(self.predeblur(x))
        else:
            feat = self.lrelu(self.conv_first(x))
        return self.feature_extraction(feat)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C, h, w)`` LR window in ``[0, 1]`` -> ``(B, C, s*h, s*w)`` SR reference frame."""
        b, t, c, h, w = x.shape
        if t != self.num_frame:
            raise ValueError(f"expected windows of {self.num_frame} frames, got {t}")
        multiple = 16 if self.hr_in else 4
        if h % multiple or w % multiple:
            raise ValueError(f"height and width must be multiples of {multiple}, got {h}x{w}")
        frames = x.reshape(b * t, c, h, w)

        nbr_feat_l = feature_pyramid(self, self.extract(frames))
        # all T frames (the reference too) are aligned in one batch of B*T
        refs = [broadcast_reference(f, t, self.center_frame_idx) for f in nbr_feat_l]
        aligned = self.pcd_align(nbr_feat_l, refs, nbr_img=frames, extractor=self.extract)
        hl, wl = aligned.shape[-2:]
        aligned = aligned.reshape(b, t, -1, hl, wl)
        feat = self.fusion(aligned if self.with_tsa else aligned.reshape(b, -1, hl, wl))

        out = self.reconstruction(feat)
        for i in range(self.upsample_stages):
            out = self.lrelu(self.pixel_shuffle(getattr(self, f"upconv{i + 1}")(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        center = x[:, self.center_frame_idx]
        if not self.hr_in:
            center = F.interpolate(center, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return out + center
