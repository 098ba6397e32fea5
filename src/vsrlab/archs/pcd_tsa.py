"""EDVR's alignment and fusion blocks, shared by EDVR (:mod:`vsrlab.archs.edvr_arch`) and IconVSR:
Pyramid, Cascading and Deformable (PCD) alignment and Temporal-Spatial Attention (TSA) fusion (Wang et
al., CVPR-W 2019). Module and parameter names follow BasicSR's ``basicsr/archs/edvr_arch.py``; every
deformable convolution is a :class:`vsrlab.ops.DeformableAlignment` built by :func:`make_alignment`
(DCN, the G x N decomposition, flow-based alignment or image-level warping: Chan et al., AAAI 2021)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.ops import DeformableAlignment, flow_warp, fuse_taps, resize_flow
from vsrlab.ops.alignment import OffsetInit

AlignType = Literal["dcn", "decomposed", "flow", "image"]
ALIGN_TYPES: tuple[str, ...] = ("dcn", "decomposed", "flow", "image")


def up2(x: Tensor) -> Tensor:
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
                up_offset = up2(offset) * 2
                up_feat = up2(feat)

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
        attn_level = up2(self.lrelu(self.spatial_attn_l3(attn_level)))
        attn = self.lrelu(self.spatial_attn3(attn)) + attn_level
        attn = up2(self.lrelu(self.spatial_attn4(attn)))
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(self.lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add
