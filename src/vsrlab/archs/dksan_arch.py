"""DKSAN: deformable-kernel alignment and spatial attention, x16 by four cascaded x2 levels.

Xu, Xiong, Wang, Li, "Deformable Kernel Convolutional Network for Video Extreme Super-Resolution"
(ECCV 2020 workshops, AIM 2020 video extreme SR, 2nd place). No code was published: this is a
reading of the paper (see :class:`DKSAN` for every detail it leaves open and what was chosen).
Deformable kernels (Gao et al., ICLR 2020) are :class:`vsrlab.ops.deform_kernel.DeformKernelConv2d`;
the modulated deformable convolution of the alignment is :class:`vsrlab.ops.DeformableAlignment`.

Inputs are LR windows ``(B, T, C, h, w)``, frames in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.blocks import RCAB, ResidualBlockNoBN, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.ops import DeformableAlignment
from vsrlab.ops.deform_kernel import DeformKernelConv2d
from vsrlab.ops.resize import matlab_imresize_tensor

DKSA_LAYERS = 2  # DK layers of the spatial attention at levels 2-4
LIGHT_DKSA_LAYERS = 1  # ... and of the light one at level 1


def _dk(in_ch: int, out_ch: int, kernel_scope: int) -> DeformKernelConv2d:
    return DeformKernelConv2d(in_ch, out_ch, kernel_size=3, scope_size=kernel_scope, padding=1)


class DKOffsetPredictor(nn.Module):
    """DKC_Align's offset and mask predictor (Eq. 10-11): ``[F_nbr, F_ref]`` ``(B, 2F, h, w)`` ->
    a 3x3 conv to F channels (``conv_fuse``) -> LeakyReLU -> ``num_dk_layers`` deformable-kernel layers
    (``dk_layers``, LeakyReLU(0.1) between), the last to ``out_channels`` (= 3 * G * 9 offsets and mask
    logits). The last DK layer's weight and bias start at zero (the alignment starts as a plain
    convolution with masks 0.5, as DCNv2 packs do)."""

    def __init__(
        self, num_feat: int, out_channels: int, num_dk_layers: int = 2, kernel_scope: int = 4
    ) -> None:
        super().__init__()
        if num_dk_layers < 1:
            raise ValueError(f"num_dk_layers must be >= 1, got {num_dk_layers}")
        self.conv_fuse = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        outs = [num_feat] * (num_dk_layers - 1) + [out_channels]
        self.dk_layers = nn.ModuleList(_dk(num_feat, out, kernel_scope) for out in outs)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        self.reset_last()

    def reset_last(self) -> None:
        """Zero the last DK layer's weight and bias."""
        last = self.dk_layers[-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)

    def forward(self, cond: Tensor) -> Tensor:
        """``(B, 2F, h, w)`` -> ``(B, out_channels, h, w)``."""
        x = self.lrelu(self.conv_fuse(cond))
        for i, layer in enumerate(self.dk_layers):
            x = layer(x)
            if i < len(self.dk_layers) - 1:
                x = self.lrelu(x)
        return x


class DKSA(nn.Module):
    """Deformable-kernel spatial attention: ``x * sigmoid(DK_n(... lrelu(DK_1(lrelu(conv(x))))))``.

    A 3x3 conv and ``num_dk_layers`` DK layers, all ``F -> F`` (LeakyReLU(0.1) between), give a
    per-pixel, per-channel attention map in (0, 1) that multiplies the features.
    """

    def __init__(self, num_feat: int, num_dk_layers: int = DKSA_LAYERS, kernel_scope: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.dk_layers = nn.ModuleList(_dk(num_feat, num_feat, kernel_scope) for _ in range(num_dk_layers))
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, F, H, W)`` -> ``(B, F, H, W)``."""
        attn = self.lrelu(self.conv(x))
        for i, layer in enumerate(self.dk_layers):
            attn = layer(attn)
            if i < len(self.dk_layers) - 1:
                attn = self.lrelu(attn)
        return x * torch.sigmoid(attn)


class DKSANLevel(nn.Module):
    """One x2 level (Eq. 5-8): ``[conv_first]`` (levels 2-4: a 3x3 conv from the previous level's image),
    ``F + DKSA(body(F))`` with ``body`` the RCABs (or residual blocks), then the upscale module
    ``conv_last(lrelu(pixel_shuffle(upconv(.))))``: ``(B, F or C, H, W)`` -> ``(B, C_out, 2H, 2W)``
    (the residual over the bicubic x2 that :class:`DKSAN` adds)."""

    def __init__(
        self,
        num_feat: int,
        num_block: int,
        num_in_ch: int | None,
        num_out_ch: int,
        squeeze_factor: int = 16,
        channel_attention: bool = True,
        dksa_layers: int = 0,
        kernel_scope: int = 4,
    ) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1) if num_in_ch is not None else None
        if channel_attention:
            self.body = make_layer(RCAB, num_block, num_feat=num_feat, squeeze_factor=squeeze_factor)
        else:
            self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        self.dksa = DKSA(num_feat, dksa_layers, kernel_scope) if dksa_layers else None
        self.upconv = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        feat = x if self.conv_first is None else self.conv_first(x)
        res = self.body(feat)
        if self.dksa is not None:
            res = self.dksa(res)
        return self.conv_last(self.lrelu(self.pixel_shuffle(self.upconv(feat + res))))


class DKSAN(nn.Module):
    """DKSAN (Xu et al. 2020, Fig. 2-4) for x16 (or x2/x4/x8) video super-resolution.

    Per-frame features (``conv_first``, LeakyReLU, ``num_extract_block`` residual blocks); DKC_Align
    (``dkc_align``) aligns every neighbour to the reference frame: ``[F_nbr, F_ref]`` -> a 3x3 conv ->
    ``num_dk_layers`` deformable-kernel layers predicting offsets and masks (Eq. 10-11) -> a 3x3
    modulated deformable convolution of ``F_nbr`` (Eq. 9), G = ``deformable_groups`` offset groups;
    the T features (reference unaligned) are concatenated and fused by a 1x1 conv (``fusion``). Then
    ``levels`` = log2(``upscale``) cascaded x2 levels (``stages``, Eq. 5-8): level ``l`` outputs
    ``I_l = up_l(F_l + DKSA_l(RCABs_l(F_l))) + bicubic_x2(I_{l-1})`` with ``I_0`` the reference LR
    frame, ``F_1`` the fused features and ``F_l = conv_first_l(I_{l-1})``.

    Args:
        num_in_ch, num_out_ch: image channels (equal: every level is a residual over bicubic).
        num_feat: feature channels F, at every level (128).
        num_frame: frames T per window (7).
        num_extract_block: residual blocks of the per-frame feature extraction (5).
        deformable_groups: offset groups G of the modulated deformable convolution (8).
        kernel_scope: scope S of every deformable-kernel layer (3x3 kernels move in an S x S scope).
        num_dk_layers: DK layers of the offset predictor (the last outputs the 3 * G * 9 offsets and
            mask logits).
        rcab_per_level: RCABs of levels 1-4 (30, 20, 15, 10); the first ``levels`` are used.
        squeeze_factor: channel-attention reduction (16).
        align: DKC_Align; False: the neighbours' features are fused unaligned.
        channel_attention: RCABs; False: residual blocks without attention (``ResidualBlockNoBN``).
        dksa: the spatial attention of every level; False: ``F + RCABs(F)``.
        center_frame_idx: reference frame; default ``num_frame // 2``.
        upscale: 2, 4, 8 or 16 (1, 2, 3 or 4 levels).

    The paper's ablation (IntVID, Table 3): backbone = ``align=False, channel_attention=False,
    dksa=False``; + channel attention = ``align=False, dksa=False``; + DKC_Align = ``dksa=False``; full.

    Choices where the paper is silent (all documented, none tuned to the counts below):

    - DK layers: 3x3 kernels, scope S = ``kernel_scope`` = 4, one offset group, kernel offsets from
      a zero-initialised 3x3 conv (so each starts as the 2x2-box average of its scope), bias. The DK
      layers of the offset predictor and of DKSA read their input on the fixed 3x3 grid and move only
      their weights (Gao et al.'s deformable kernels); Eq. 11 can be read as also deforming where they
      sample (DK + DCN), which ``DeformKernelConv2d(offset=...)`` supports but is not used here.
    - G = ``deformable_groups`` = 8 offset groups in the modulated DCN of DKC_Align: the paper never
      states G; 8 is EDVR's, the baseline it builds on.
    - Loss: Eq. 13 read as the Charbonnier loss per pixel, averaged (eps 1e-3, the recipe
      ``experiment=dksan``; ``loss=charbonnier``), not summed over the image.
    - DKC_Align: conv_fuse 3x3 ``2F -> F`` + LeakyReLU, then ``num_dk_layers`` = 2 DK layers
      ``F -> F -> 3*G*9`` (LeakyReLU between; the last zero-initialised); offsets on the 3x3 kernel
      grid, sigmoid masks (DCNv2 / :class:`DeformableAlignment` layout). Only the T - 1 neighbours
      are aligned (the paper aligns neighbours), in one batch of ``B*(T-1)`` in window order; the
      output is not activated (the reference features, residual-block outputs, are not either).
    - Fusion: one 1x1 conv ``T*F -> F``, no activation (EDVR without TSA).
    - DKSA: a 3x3 conv ``F -> F`` + LeakyReLU and two DK layers ``F -> F`` (LeakyReLU between), sigmoid,
      multiplying the RCAB output (per pixel and channel). The light DKSA of level 1 has one DK layer.
    - Upscale module: ``upconv`` 3x3 ``F -> 4F``, pixel shuffle x2, LeakyReLU(0.1), ``conv_last``
      3x3 ``F -> C``.
    - Levels 2-4: width F = 128 (with RCABs at every level, channel attention then adds 75 x 2,184 =
      0.16M parameters, the paper's +0.2M); feature extractor = one 3x3 conv ``C -> F`` (RCAN's
      head). A conv + one residual block would add 3 x 295k = 0.89M and put the backbone at 27.0M.
    - The bicubic x2 of every level is MATLAB's (:func:`matlab_imresize_tensor`, Keys a = -0.5,
      mirrored borders): the LR frames are MATLAB-bicubic downscaled and the paper's bicubic
      baseline is MATLAB's; exact, linear and differentiable (two small matmuls). PyTorch's bicubic
      (a = -0.75, clamped borders) would start each level from a sharper, ringing prediction.
    - Per-frame features: LeakyReLU(0.1) after ``conv_first`` (EDVR); RCABs use PyTorch's default
      initialisation (BasicSR), residual blocks BasicSR's 0.1-scaled Kaiming.

    Parameters at the defaults (x16, T = 7, F = 128), built here and asserted in tests/test_dksan.py:

    ==========================  ==========  =====  ======
    variant                     this        paper  diff
    ==========================  ==========  =====  ======
    backbone (resblocks only)   26,117,772  26.1M  +0.1%
    + channel attention         26,281,572  26.3M  -0.1%
    + DKC_Align                 27,470,560  27.0M  +1.7%
    full DKSAN (+ DKSA)         30,042,078  29.5M  +1.8%
    ==========================  ==========  =====  ======

    DKC_Align adds 1,188,988 here (paper +0.7M): conv_fuse 295,040, DK ``F -> F`` 283,026, DK
    ``F -> 216`` 463,338, DCN 147,584; the DKSAs add 2,571,518 (paper +2.5M): 3 x 713,636 + 430,610.

    ``forward(x, return_levels=False)``: ``(B, T, C, h, w)`` -> ``(B, C, s*h, s*w)``; with
    ``return_levels`` the list ``[x2, x4, ..., xs]`` of every level's output (the last is the output).
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    # activation checkpointing with model.checkpointing=true (vsrlab.models.speed): the per-call blocks
    checkpoint_modules = ("stages.*.body.*", "stages.*.dksa")

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 128,
        num_frame: int = 7,
        num_extract_block: int = 5,
        deformable_groups: int = 8,
        kernel_scope: int = 4,
        num_dk_layers: int = 2,
        rcab_per_level: Sequence[int] = (30, 20, 15, 10),
        squeeze_factor: int = 16,
        align: bool = True,
        channel_attention: bool = True,
        dksa: bool = True,
        center_frame_idx: int | None = None,
        upscale: int = 16,
    ) -> None:
        super().__init__()
        if upscale not in (2, 4, 8, 16):
            raise ValueError(f"upscale must be 2, 4, 8 or 16, got {upscale}")
        if num_out_ch != num_in_ch:
            raise ValueError(f"num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch})")
        levels = int(math.log2(upscale))
        if len(rcab_per_level) < levels:
            raise ValueError(
                f"rcab_per_level has {len(rcab_per_level)} entries for the {levels} levels of x{upscale}"
            )
        self.num_frame = num_frame
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        self.upscale, self.levels = upscale, levels
        self.align, self.channel_attention, self.dksa = align, channel_attention, dksa

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(ResidualBlockNoBN, num_extract_block, num_feat=num_feat)
        if align:
            predictor = DKOffsetPredictor(num_feat, 3 * deformable_groups * 9, num_dk_layers, kernel_scope)
            self.dkc_align = DeformableAlignment(
                num_feat,
                num_feat,
                2 * num_feat,
                offset_groups=deformable_groups,
                num_offsets=9,
                modulated=True,
                conv_offset=predictor,
            )
            predictor.reset_last()  # DeformableAlignment zeroes the last nn.Conv2d it finds, not a DK layer
        self.fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        self.stages = nn.ModuleList(
            DKSANLevel(
                num_feat,
                int(rcab_per_level[i]),
                None if i == 0 else num_out_ch,
                num_out_ch,
                squeeze_factor,
                channel_attention,
                (LIGHT_DKSA_LAYERS if i == 0 else DKSA_LAYERS) if dksa else 0,
                kernel_scope,
            )
            for i in range(levels)
        )
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def align_features(self, feat: Tensor) -> Tensor:
        """``(B, T, F, h, w)`` per-frame features -> the same, every neighbour aligned to the reference."""
        b, t = feat.shape[:2]
        c = self.center_frame_idx
        ref = feat[:, c]
        nbr = torch.cat([feat[:, :c], feat[:, c + 1 :]], 1).flatten(0, 1)
        cond = torch.cat([nbr, ref.unsqueeze(1).expand(b, t - 1, *ref.shape[1:]).flatten(0, 1)], 1)
        aligned = self.dkc_align(nbr, cond).view(b, t - 1, *feat.shape[2:])
        return torch.cat([aligned[:, :c], ref.unsqueeze(1), aligned[:, c:]], 1)

    def forward(self, x: Tensor, return_levels: bool = False) -> Tensor | list[Tensor]:
        """``(B, T, C, h, w)`` LR window -> ``(B, C, s*h, s*w)``, or every level's output (x2 first)."""
        b, t, c, h, w = x.shape
        if t != self.num_frame:
            raise ValueError(f"expected windows of {self.num_frame} frames, got {t}")
        feat = self.feature_extraction(self.lrelu(self.conv_first(x.reshape(b * t, c, h, w))))
        feat = feat.view(b, t, -1, h, w)
        if self.align and t > 1:
            feat = self.align_features(feat)
        feat = self.fusion(feat.reshape(b, -1, h, w))

        image = x[:, self.center_frame_idx]
        outs = []
        for i, stage in enumerate(self.stages):
            image = stage(feat if i == 0 else image) + matlab_imresize_tensor(image, 2)
            outs.append(image)
        return outs if return_levels else outs[-1]
