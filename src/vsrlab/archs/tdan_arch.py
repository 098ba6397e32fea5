"""TDAN: Temporally-Deformable Alignment Network (Tian et al., CVPR 2020).

Structure, parameter names and defaults follow MMagic's ``TDANNet`` (BasicSR has no TDAN), so
MMagic's TDAN checkpoints load through :func:`vsrlab.archs.load_pretrained`:

1. a shared feature extractor (conv + ReLU, ``num_blocks_before_align`` residual blocks) per frame
   (Sec. 3.1, "feature extraction", Fig. 2);
2. for every neighbour frame, offsets are predicted from the concatenated [centre, neighbour]
   features (Eq. 1-2): a 3x3 "bottleneck" convolution to ``mid_channels`` followed by two
   self-conditioned deformable convolutions (``feat_aggregate``); a deformable convolution warps
   the neighbour's features by offsets predicted from that aggregate (``align_1``, Eq. 3-4) and a
   second, self-conditioned one refines the result (``align_2``); all are DCNv1 (no modulation
   masks) with 8 deformable groups, as in the authors' release and MMagic;
3. the aligned features are turned back into an aligned LR image (``to_rgb``), which TDAN
   supervises with the centre frame (alignment loss, Sec. 3.3); the centre frame itself is used
   unchanged;
4. the ``num_frame`` (aligned) LR images are concatenated and super-resolved by a conv + ReLU,
   ``num_blocks_after_align`` residual blocks, two pixel-shuffle x2 stages and a 3x3 conv
   (Sec. 3.2), with no global skip connection.

MMagic feeds the network ``x - 0.5`` and adds 0.5 to its output (its data preprocessor has mean
0.5*255 and std 255); ``img_mean`` reproduces that so vsrlab's ``[0, 1]`` frames can be used.

For the offset-diversity study of Chan et al., "Understanding Deformable Alignment in Video
Super-Resolution" (AAAI 2021, Table 2: TDAN with N = 1, 9, 25 offsets), ``num_offsets`` sets the
number of offsets per deformable group of the two deformable convolutions that warp the
neighbour's features (``align_1`` and ``align_2``); N = 9 on the 3x3 kernel grid is the original
TDAN, N = 25 uses a 5x5 kernel grid, N = 1 a single offset per group (flow-like warp followed by
a 1x1 convolution). The offset-generating deformable convolutions in ``feat_aggregate`` stay
3x3 DCNs. With N != 9 the offsets are predicted by a 3x3 convolution (MMagic would use a kernel
of the DCN's size), so only the N = 9 model takes MMagic's weights.

Parameter count of the default configuration (1,970,819), layer by layer, as MMagic builds it:

====================================================  =====================================
``feat_extract.0`` conv 3->64, 3x3 (+ReLU)             3*64*9 + 64            =     1,792
``feat_extract.1`` 5 residual blocks, 2 convs 64->64   5 * 2*(64*64*9 + 64)   =   369,280
``feat_aggregate.0`` conv 128->64, 3x3                 128*64*9 + 64          =    73,792
``feat_aggregate.{1,2}``, ``align_{1,2}``: 4 DCNs,     4 * (64*64*9           =
  weight 64x64x3x3, no bias; conv_offset 64->144 3x3        + 64*144*9 + 144) =   479,808
``to_rgb`` conv 64->3, 3x3                             64*3*9 + 3             =     1,731
``reconstruct.0`` conv 15->64, 3x3 (+ReLU)             15*64*9 + 64           =     8,704
``reconstruct.1`` 10 residual blocks                   10 * 73,856            =   738,560
``reconstruct.{3,4}`` upsample_conv 64->256, 3x3       2 * (64*256*9 + 256)   =   295,424
``reconstruct.5`` conv 64->3, 3x3, no bias             64*3*9                 =     1,728
====================================================  =====================================

TDAN reports 1.97M parameters.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ResidualBlockNoBN, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.ops import DeformableAlignment


class ConvReLU(nn.Conv2d):
    """A 3x3 convolution followed by ReLU (MMCV's default ``ConvModule``, parameters one level up).

    Initialised as ``ConvModule`` does: Kaiming normal (fan-out, ReLU), zero bias.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, 1, 1)
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


class PixelShufflePack(nn.Module):
    """``upsample_conv`` (3x3, to ``num_feat * s^2`` channels) and a pixel shuffle by ``s`` (MMagic names).

    ``(B, F, H, W)`` -> ``(B, F, sH, sW)``, no activation.
    """

    def __init__(self, num_feat: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.upsample_conv = nn.Conv2d(num_feat, num_feat * scale * scale, 3, 1, 1)
        nn.init.kaiming_normal_(self.upsample_conv.weight, a=0, mode="fan_in")
        nn.init.zeros_(self.upsample_conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.upsample_conv(x), self.scale)


class TDAN(nn.Module):
    """TDAN for sliding-window VSR: ``(B, T, C, h, w)`` -> ``(B, C, s*h, s*w)``.

    ``forward`` returns the SR centre frame and keeps the aligned LR frames of the same call in
    ``last_aligned_lr`` ``(B, T, C, h, w)`` (in the input's ``[0, 1]`` range; the centre slot
    holds the centre frame itself) for TDAN's alignment loss,
    ``0.01 * MSE(last_aligned_lr, centre frame repeated T times)`` (Sec. 3.3, with MMagic's
    weight; the centre slot contributes zero, as in MMagic).

    Args:
        in_channels, out_channels: image channels.
        mid_channels: feature channels.
        num_blocks_before_align: residual blocks of the feature extractor.
        num_blocks_after_align: residual blocks of the reconstruction network.
        num_frame: frames in the window (MMagic: 5).
        center_frame_idx: frame to super-resolve (default ``num_frame // 2``, as MMagic).
        deform_groups: deformable groups G of every deformable convolution.
        num_offsets: offsets N per group in ``align_1`` and ``align_2`` (9: the original 3x3 DCN).
        offset_base: where those N offsets start: ``'auto'`` (kernel grid when N is an odd
            square, else zero), ``'kernel'`` or ``'zero'`` (see :class:`DeformableAlignment`).
        upscale: SR factor, a power of two (one pixel-shuffle x2 stage each; MMagic: 4).
        img_mean: subtracted from the input and added to the output (MMagic's normalisation).

    Attributes:
        last_aligned_lr: aligned LR frames of the last ``forward``, or ``None`` before the first.
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = ("deform_groups", "num_offsets")

    def __init__(
        self,
        in_channels: int = 3,
        mid_channels: int = 64,
        out_channels: int = 3,
        num_blocks_before_align: int = 5,
        num_blocks_after_align: int = 10,
        num_frame: int = 5,
        center_frame_idx: int | None = None,
        deform_groups: int = 8,
        num_offsets: int = 9,
        offset_base: Literal["auto", "kernel", "zero"] = "auto",
        upscale: int = 4,
        img_mean: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_frame = num_frame
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        num_stages = round(math.log2(upscale)) if upscale >= 2 else 0
        if 2**num_stages != upscale:
            raise ValueError(f"upscale must be a power of two (x2 pixel-shuffle stages), got {upscale}")
        self.upscale = upscale
        self.img_mean = img_mean

        self.feat_extract = nn.Sequential(
            ConvReLU(in_channels, mid_channels),
            make_layer(ResidualBlockNoBN, num_blocks_before_align, num_feat=mid_channels),
        )

        def dcn(num: int, base: str) -> DeformableAlignment:
            layer = DeformableAlignment(
                mid_channels,
                mid_channels,
                mid_channels,
                offset_groups=deform_groups,
                num_offsets=num,
                modulated=False,
                offset_base=base,
                bias=False,
            )
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")  # MMCV DeformConv2d's init
            return layer

        # offset generator: bottleneck conv, then two self-conditioned 3x3 DCNs (no activations)
        self.feat_aggregate = nn.ModuleList(
            [nn.Conv2d(2 * mid_channels, mid_channels, 3, 1, 1), dcn(9, "kernel"), dcn(9, "kernel")]
        )
        self.align_1 = dcn(num_offsets, offset_base)  # neighbour features, offsets from the aggregate
        self.align_2 = dcn(num_offsets, offset_base)  # self-conditioned refinement
        self.to_rgb = nn.Conv2d(mid_channels, in_channels, 3, 1, 1)

        self.reconstruct = nn.Sequential(
            ConvReLU(in_channels * num_frame, mid_channels),
            make_layer(ResidualBlockNoBN, num_blocks_after_align, num_feat=mid_channels),
            *(PixelShufflePack(mid_channels, 2) for _ in range(num_stages)),
            nn.Conv2d(mid_channels, out_channels, 3, 1, 1, bias=False),
        )

        self.last_aligned_lr: Tensor | None = None

    def align(self, feat_neig: Tensor, feat_center: Tensor) -> Tensor:
        """Neighbour features ``(B', F, h, w)`` aligned to the centre's ``(B', F, h, w)``, as LR images
        ``(B', C, h, w)`` (Eq. 1-4, then the reconstruction layer of Fig. 2)."""
        agg = self.feat_aggregate[0](torch.cat([feat_center, feat_neig], dim=1))
        for layer in self.feat_aggregate[1:]:
            agg = layer(agg, agg)
        aligned = self.align_1(feat_neig, agg)
        aligned = self.align_2(aligned, aligned)
        return self.to_rgb(aligned)

    def forward(self, x: Tensor, return_aligned_lr: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``(B, T, C, h, w)`` LR window in ``[0, 1]`` -> ``(B, C, s*h, s*w)`` SR centre frame, and with
        ``return_aligned_lr`` the aligned LR frames ``(B, T, C, h, w)`` too (TDAN's alignment loss).

        Also keeps the aligned frames in ``last_aligned_lr``.
        """
        b, t, c, h, w = x.shape
        if t != self.num_frame:
            raise ValueError(f"expected windows of {self.num_frame} frames, got {t}")
        x = x - self.img_mean
        feats = self.feat_extract(x.reshape(b * t, c, h, w)).view(b, t, -1, h, w)

        ci = self.center_frame_idx
        neighbours = [i for i in range(t) if i != ci]
        # all neighbours in one batch: (B*(T-1), F, h, w), neighbour-major
        feat_neig = feats[:, neighbours].transpose(0, 1).reshape(b * (t - 1), -1, h, w)
        feat_center = feats[:, ci].repeat(t - 1, 1, 1, 1)
        aligned_neig = self.align(feat_neig, feat_center).view(t - 1, b, c, h, w).transpose(0, 1)
        aligned = torch.cat([aligned_neig[:, :ci], x[:, ci : ci + 1], aligned_neig[:, ci:]], dim=1)

        self.last_aligned_lr = aligned + self.img_mean
        out = self.reconstruct(aligned.reshape(b, t * c, h, w)) + self.img_mean
        return (out, self.last_aligned_lr) if return_aligned_lr else out
