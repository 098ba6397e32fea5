"""EDVR: Pyramid, Cascading and Deformable (PCD) alignment + Temporal-Spatial Attention (TSA) fusion.

Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks",
CVPR-W 2019. Module and parameter names, defaults and the forward computation follow BasicSR's
``basicsr/archs/edvr_arch.py``, so a BasicSR EDVR checkpoint loads with ``strict=True``
(``align_type='dcn'``, the default).

Every deformable convolution of the PCD module is a :class:`vsrlab.ops.DeformableAlignment`,
built by :func:`make_alignment` from one alignment specification, which makes the alignment
selectable as in Chan et al., "Understanding Deformable Alignment in Video Super-Resolution"
(AAAI 2021): DCN (Table 1), the G x N decomposition (Tables 1-2, Fig. 9/16), flow-based
alignment and image-level warping (Table 4). See :class:`EDVR` for the variants.

Inputs are LR windows ``(B, T, C, h, w)``, frames in ``[0, 1]``; ``h`` and ``w`` must be
multiples of 4 (two stride-2 pyramid levels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ResidualBlockNoBN, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.ops import DeformableAlignment, flow_warp, fuse_taps, resize_flow
from vsrlab.ops.alignment import OffsetInit

AlignType = Literal["dcn", "decomposed", "flow", "image"]
ALIGN_TYPES: tuple[str, ...] = ("dcn", "decomposed", "flow", "image")


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def feature_pyramid(net: nn.Module, feat_l1: Tensor) -> list[Tensor]:
    """EDVR's 3-level pyramid (Sec. 3.2): L1 features ``(N, F, h, w)`` -> ``[L1, L2 (h/2), L3 (h/4)]``,
    with ``net``'s stride-2 ``conv_l{2,3}_1`` and ``conv_l{2,3}_2`` convolutions and ``lrelu``."""
    feat_l2 = net.lrelu(net.conv_l2_2(net.lrelu(net.conv_l2_1(feat_l1))))
    feat_l3 = net.lrelu(net.conv_l3_2(net.lrelu(net.conv_l3_1(feat_l2))))
    return [feat_l1, feat_l2, feat_l3]


def broadcast_reference(feat: Tensor, frames: int, center: int) -> Tensor:
    """Features ``(B*T, ...)`` of ``(B, T)`` flattened windows -> the centre frame's, repeated per frame."""
    ref = feat.reshape(-1, frames, *feat.shape[1:])[:, center]
    return ref.unsqueeze(1).expand(-1, frames, *ref.shape[1:]).reshape(feat.shape)


def make_alignment(
    num_feat: int,
    deformable_groups: int = 8,
    align_type: AlignType = "dcn",
    num_offsets: int = 9,
    modulated: bool = True,
    offset_init: OffsetInit = "zero",
) -> DeformableAlignment:
    """One alignment pack of the PCD module, ``forward(feat, cond)``, both ``(B, num_feat, H, W)``.

    - ``'dcn'``: G = ``deformable_groups`` offset groups, N = ``num_offsets`` offsets added to the
      ``sqrt(N) x sqrt(N)`` kernel grid (N must be an odd square); N = 9 with ``modulated`` is
      BasicSR's ``DCNv2Pack`` (weight ``(F, F, 3, 3)``), parameter for parameter.
    - ``'decomposed'``: G x N free offsets (no kernel grid, any N), each a warp of the group's
      channels, fused by a 1x1 convolution (weight ``(F, F, 1, N)``) -- Chan et al. Eq. 3/Sec. 3.2;
      ``offset_init='grid'`` starts them on the N grid positions nearest the pixel (N = 9: the DCN).
    - ``'flow'`` and ``'image'``: G = N = 1, no mask, no grid: one warp + 1x1 convolution
      (flow-based alignment); ``deformable_groups``, ``num_offsets`` and ``modulated`` are ignored.
    """
    if align_type == "dcn":
        spec = dict(
            offset_groups=deformable_groups,
            num_offsets=num_offsets,
            modulated=modulated,
            offset_base="kernel",
        )
    elif align_type == "decomposed":
        spec = dict(
            offset_groups=deformable_groups,
            num_offsets=num_offsets,
            modulated=modulated,
            offset_base="zero",
            offset_init=offset_init,
        )
    elif align_type in ("flow", "image"):
        spec = dict(offset_groups=1, num_offsets=1, modulated=False, offset_base="zero")
    else:
        raise ValueError(f"align_type must be one of {ALIGN_TYPES}, got {align_type!r}")
    return DeformableAlignment(num_feat, num_feat, num_feat, **spec)


class PCDAlignment(nn.Module):
    """Pyramid, Cascading and Deformable alignment (EDVR Sec. 3.2, Fig. 3).

    For each pyramid level ``l`` = 3, 2, 1 (1/4, 1/2, 1 of the L1 size), coarse to fine:

    - offset features ``dP^l = h([F^l_nbr, F^l_ref], 2 * up(dP^{l+1}))`` (Eq. 3; the x2 is applied
      to the offset *features*, as in BasicSR), from which the pack predicts its offsets (Eq. 2);
    - aligned features ``A^l = g(DConv(F^l_nbr, dP^l), up(A^{l+1}))`` (Eq. 1, 4).

    A cascading pack then refines ``A^1`` with offsets predicted from ``[A^1, F^1_ref]``.

    Args:
        num_feat: feature channels F.
        deformable_groups: offset groups G.
        align_type, num_offsets, modulated, offset_init: the packs, see :func:`make_alignment`.

    With ``align_type='image'`` the cascading stage warps the neighbour's *image* instead of
    ``A^1`` (see :meth:`forward`).
    """

    def __init__(
        self,
        num_feat: int = 64,
        deformable_groups: int = 8,
        align_type: AlignType = "dcn",
        num_offsets: int = 9,
        modulated: bool = True,
        offset_init: OffsetInit = "zero",
    ) -> None:
        super().__init__()
        self.align_type = align_type
        pack = (num_feat, deformable_groups, align_type, num_offsets, modulated, offset_init)
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for i in (3, 2, 1):
            level = f"l{i}"
            self.offset_conv1[level] = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
            if i == 3:
                self.offset_conv2[level] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            else:
                self.offset_conv2[level] = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
                self.offset_conv3[level] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.dcn_pack[level] = make_alignment(*pack)
            if i < 3:
                self.feat_conv[level] = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.cas_offset_conv1 = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.cas_dcnpack = make_alignment(*pack)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        self.last_flow: Tensor | None = None

    def forward(
        self,
        nbr_feat_l: Sequence[Tensor],
        ref_feat_l: Sequence[Tensor],
        nbr_img: Tensor | None = None,
        extractor: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Align the neighbour's pyramid to the reference's.

        Args:
            nbr_feat_l, ref_feat_l: ``[L1, L2, L3]`` features, ``(B, F, H, W)``,
                ``(B, F, H/2, W/2)``, ``(B, F, H/4, W/4)``.
            nbr_img: ``align_type='image'`` only: the neighbour's input frame ``(B, C, sH, sW)``
                (``s`` = 1, or 4 for EDVR's ``hr_in``).
            extractor: ``align_type='image'`` only: frame ``(B, C, sH, sW)`` -> L1 features
                ``(B, F, H, W)`` (EDVR's shared ``conv_first`` + ``feature_extraction``).

        Returns:
            ``(B, F, H, W)`` aligned L1 features.

        Image-level alignment: the pyramid and the L1 stage run as for ``'flow'`` (features are
        warped, each level by its own single flow), and the cascading pack predicts its flow
        ``r`` from ``[A^1, F^1_ref]`` as usual. Taking ``A^1`` as the neighbour warped by the L1
        flow ``f1``, the cascade would sample the neighbour at ``p + r(p) + f1(p + r(p))``: this
        composed flow (``last_flow``, ``(B, 2, H, W)``, x/y order; also the cascading pack's
        ``last_offset``, dy/dx order) warps the neighbour's *frame* instead (bilinear, zero
        outside), whose features are re-extracted by ``extractor`` and passed through the
        cascading pack's 1x1 convolution. The output depends on the neighbour only through the
        warped frame; the L3/L2/L1 feature warps act only through the flows they lead to.
        """
        if self.align_type == "image" and (nbr_img is None or extractor is None):
            raise ValueError(
                "align_type='image' needs the neighbour frames (nbr_img) and the feature extractor"
            )
        up_offset: Tensor | None = None
        up_feat: Tensor | None = None
        for i in (3, 2, 1):
            level = f"l{i}"
            nbr, ref = nbr_feat_l[i - 1], ref_feat_l[i - 1]
            offset = self.lrelu(self.offset_conv1[level](torch.cat([nbr, ref], 1)))
            if i == 3:
                offset = self.lrelu(self.offset_conv2[level](offset))
            else:
                offset = self.lrelu(self.offset_conv2[level](torch.cat([offset, up_offset], 1)))
                offset = self.lrelu(self.offset_conv3[level](offset))
            feat = self.dcn_pack[level](nbr, offset)
            if i < 3:
                feat = self.feat_conv[level](torch.cat([feat, up_feat], 1))
            if i > 1:
                feat = self.lrelu(feat)
                up_offset = _up2(offset) * 2
                up_feat = _up2(feat)

        cond = self.lrelu(self.cas_offset_conv1(torch.cat([feat, ref_feat_l[0]], 1)))
        cond = self.lrelu(self.cas_offset_conv2(cond))
        if self.align_type != "image":
            return self.lrelu(self.cas_dcnpack(feat, cond))
        return self.lrelu(self._align_image(cond, nbr_img, extractor))

    def _align_image(self, cond: Tensor, nbr_img: Tensor, extractor: Callable[[Tensor], Tensor]) -> Tensor:
        pack = self.cas_dcnpack
        residual, _ = pack.predict_offsets(cond)  # (B, 2, H, W), (dy, dx)
        r = residual.flip(1)
        f1 = self.dcn_pack["l1"].last_offset.flip(1)
        # border padding: near the edges the L1 flow is extrapolated rather than zeroed
        flow = r + flow_warp(f1, r, padding_mode="border")
        # recorded as DeformableAlignment.forward records its offsets (offset losses and monitors)
        pack.last_offset, pack.last_mask = flow.flip(1), None
        if pack.offset_history is not None:
            pack.offset_history.append(pack.last_offset)
        self.last_flow = flow
        # with hr_in the frames are 4x the L1 size
        feat = extractor(flow_warp(nbr_img, resize_flow(flow, nbr_img.shape[-2:])))
        return fuse_taps(feat.unsqueeze(2), pack.weight, pack.bias)


class TSAFusion(nn.Module):
    """Temporal and Spatial Attention fusion (EDVR Sec. 3.3, Fig. 4).

    Temporal attention: ``h_i = sigmoid(<theta(A_i), phi(A_ref)>)`` per pixel (Eq. 5), the
    features are weighted ``A_i * h_i`` (Eq. 6) and fused by a 1x1 convolution (Eq. 7). Spatial
    attention: a two-level pyramid of max/avg-pooled maps from the weighted features gives a
    multiplicative mask ``M`` (``sigmoid``, x2 so that it starts near 1) and an additive map
    ``M_add``: ``out = fused * 2 * M + M_add``.

    Args:
        num_feat: feature channels F.
        num_frame: frames T.
        center_frame_idx: index of the reference frame.

    ``forward``: ``(B, T, F, H, W)`` -> ``(B, F, H, W)``; H and W multiples of 4.
    """

    def __init__(self, num_feat: int = 64, num_frame: int = 5, center_frame_idx: int = 2) -> None:
        super().__init__()
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.temporal_attn2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.feat_fusion = nn.Conv2d(num_frame * num_feat, num_feat, 1, 1)
        self.spatial_attn1 = nn.Conv2d(num_frame * num_feat, num_feat, 1)
        self.spatial_attn2 = nn.Conv2d(2 * num_feat, num_feat, 1)
        self.spatial_attn3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(num_feat, num_feat, 1)
        self.spatial_attn5 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(num_feat, num_feat, 1)
        self.spatial_attn_l2 = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(num_feat, num_feat, 1)
        self.spatial_attn_add2 = nn.Conv2d(num_feat, num_feat, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def _pool(self, x: Tensor) -> Tensor:
        """Max and average 3x3 stride-2 pooling, concatenated: ``(B, 2F, ceil(H/2), ceil(W/2))``."""
        return torch.cat([F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)], 1)

    def forward(self, aligned_feat: Tensor) -> Tensor:
        """``(B, T, F, H, W)`` aligned features -> ``(B, F, H, W)`` fused features."""
        b, t, c, h, w = aligned_feat.shape
        emb_ref = self.temporal_attn1(aligned_feat[:, self.center_frame_idx])
        emb = self.temporal_attn2(aligned_feat.reshape(b * t, c, h, w)).view(b, t, c, h, w)
        corr = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(2, keepdim=True))  # (B, T, 1, H, W)
        weighted = (aligned_feat * corr).reshape(b, t * c, h, w)

        feat = self.lrelu(self.feat_fusion(weighted))

        attn = self.lrelu(self.spatial_attn1(weighted))
        attn = self.lrelu(self.spatial_attn2(self._pool(attn)))
        attn_level = self.lrelu(self.spatial_attn_l1(attn))
        attn_level = self.lrelu(self.spatial_attn_l2(self._pool(attn_level)))
        attn_level = _up2(self.lrelu(self.spatial_attn_l3(attn_level)))
        attn = self.lrelu(self.spatial_attn3(attn)) + attn_level
        attn = _up2(self.lrelu(self.spatial_attn4(attn)))
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(self.lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add


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
        feat_l3 = _up2(self.resblock_l3(feat_l3))
        feat_l2 = _up2(self.resblock_l2_2(self.resblock_l2_1(feat_l2) + feat_l3))
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
