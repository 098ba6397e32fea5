"""BasicVSR: bidirectional recurrent propagation with flow-warped features.

Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution and
Beyond", CVPR 2021, Sec. 3 and Fig. 3. Two recurrent branches run over the whole clip, one from
the last frame to the first (backward) and one from the first to the last (forward). Each step
warps the hidden state of the previous step onto the current frame with SPyNet optical flow
(alignment, Eq. 2), concatenates it with the current LR frame and refines it with residual
blocks (propagation, Eq. 1). The two states of a frame are fused by a 1x1 convolution and
upsampled x4 by two pixel-shuffle stages, added to the bilinearly upsampled LR frame
(aggregation and upsampling, Eq. 3).

Module names and the forward computation follow BasicSR's ``basicsr/archs/basicvsr_arch.py``,
so its checkpoints load unchanged; MMagic's (``BasicVSRNet``) load through
:func:`vsrlab.archs.load_pretrained`. :class:`BidirectionalRecurrentVSR` holds what BasicVSR
and IconVSR (:mod:`vsrlab.archs.iconvsr_arch`) share.
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
from vsrlab.archs.spynet_arch import SPyNet
from vsrlab.ops.warp import flow_warp


class BidirectionalRecurrentVSR(nn.Module):
    """Flow estimation, the two recurrent passes and the x4 reconstruction of the BasicVSR family.

    Subclasses create ``backward_trunk`` and ``forward_trunk`` and define :meth:`forward_step`
    (how the forward branch combines its state with the backward branch's); they may add
    refill features at keyframes through :meth:`refill_features` together with
    ``backward_fusion`` and ``forward_fusion`` convolutions.

    Recurrent: no ``num_frame`` attribute; ``(B, T, 3, h, w)`` -> ``(B, T, 3, 4h, 4w)``.
    """

    temporal: ClassVar[Temporal] = "recurrent"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    # MMagic's BasicVSRNet and IconVSRNet call the propagation branches ``*_resblocks``
    MMAGIC_KEY_RENAMES = [(r"(backward|forward)_resblocks\.", r"\1_trunk.")]

    def __init__(self, num_feat: int, spynet_path: str | Path | None) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.spynet = SPyNet(spynet_path)
        # BasicSR fixes the channels after the first x2 stage to 64 whatever num_feat is
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def get_flow(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Flows between neighbouring frames, both ``(B, T-1, 2, h, w)`` in (x, y) order.

        ``flows_backward[:, i]`` warps frame ``i+1`` onto frame ``i`` (used by the backward
        branch), ``flows_forward[:, i]`` warps frame ``i`` onto frame ``i+1``. A clip that is its
        own time reversal (Vimeo-90K-T evaluation mirrors the 7 frames) has
        ``flows_forward = flows_backward.flip(1)`` exactly, so SPyNet then runs once (as MMagic).
        """
        b, t, c, h, w = x.shape
        prev = x[:, :-1].reshape(-1, c, h, w)
        nxt = x[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(prev, nxt).view(b, t - 1, 2, h, w)
        if t % 2 == 0 and torch.equal(x, x.flip(1)):
            return flows_backward.flip(1), flows_backward
        flows_forward = self.spynet(nxt, prev).view(b, t - 1, 2, h, w)
        return flows_forward, flows_backward

    def refill_features(self, x: Tensor) -> dict[int, Tensor]:
        """Features ``(B, num_feat, h, w)`` fused into both branches at these frame indices (none here)."""
        return {}

    def forward_step(self, lr: Tensor, feat_backward: Tensor, feat_prop: Tensor) -> tuple[Tensor, Tensor]:
        """One forward-branch step: (new forward state, features to upsample), all ``(B, F, h, w)``."""
        raise NotImplementedError

    def reconstruct(self, feat: Tensor, lr: Tensor) -> Tensor:
        """Eq. 3's upsampling: ``(B, F, h, w)`` features + ``(B, 3, h, w)`` frame -> ``(B, 3, 4h, 4w)``."""
        out = self.lrelu(self.pixel_shuffle(self.upconv1(feat)))
        out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)

    def propagate(self, x: Tensor) -> Tensor:
        """Both recurrent passes over ``(B, T, 3, h, w)`` and the reconstruction: ``(B, T, 3, 4h, 4w)``."""
        b, t, _, h, w = x.shape
        flows_forward, flows_backward = self.get_flow(x) if t > 1 else (None, None)
        refill = self.refill_features(x)

        feats_backward: list[Tensor] = [x] * t  # placeholders, all overwritten
        feat_prop = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat_prop = flow_warp(feat_prop, flows_backward[:, i])
            if i in refill:
                feat_prop = self.backward_fusion(torch.cat([feat_prop, refill[i]], 1))
            feat_prop = self.backward_trunk(torch.cat([x[:, i], feat_prop], 1))
            feats_backward[i] = feat_prop

        outputs = []
        feat_prop = x.new_zeros(b, self.num_feat, h, w)
        for i in range(t):
            if i > 0:
                feat_prop = flow_warp(feat_prop, flows_forward[:, i - 1])
            if i in refill:
                feat_prop = self.forward_fusion(torch.cat([feat_prop, refill[i]], 1))
            feat_prop, feat = self.forward_step(x[:, i], feats_backward[i], feat_prop)
            outputs.append(self.reconstruct(feat, x[:, i]))
        return torch.stack(outputs, 1)

    @staticmethod
    def check_input(x: Tensor) -> None:
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"expected a clip (B, T, 3, h, w), got {tuple(x.shape)}")


class BasicVSR(BidirectionalRecurrentVSR):
    """BasicVSR (Chan et al., CVPR 2021, Fig. 3), x4.

    Args:
        num_feat: channels of the hidden states (64 in the paper).
        num_block: residual blocks per propagation branch (30 in the paper: 6.3M parameters).
        spynet_path: SPyNet checkpoint (BasicSR or MMagic layout) loaded strictly.

    ``forward``: ``(B, T, 3, h, w)`` LR clip in ``[0, 1]`` -> ``(B, T, 3, 4h, 4w)``; any ``h``, ``w``
    (SPyNet resizes internally, but frames below about 64x64 give poor flow).
    """

    # activation checkpointing with model.checkpointing=true (vsrlab.models.speed): the per-call blocks
    checkpoint_modules = ("backward_trunk", "forward_trunk")

    def __init__(
        self, num_feat: int = 64, num_block: int = 15, spynet_path: str | Path | None = None
    ) -> None:
        super().__init__(num_feat, spynet_path)
        self.backward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.forward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.fusion = nn.Conv2d(num_feat * 2, num_feat, 1, 1, 0)

    def forward_step(self, lr: Tensor, feat_backward: Tensor, feat_prop: Tensor) -> tuple[Tensor, Tensor]:
        """Forward state from the frame and the warped state; the two branches fused by a 1x1 conv."""
        feat_prop = self.forward_trunk(torch.cat([lr, feat_prop], 1))
        return feat_prop, self.lrelu(self.fusion(torch.cat([feat_backward, feat_prop], 1)))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, 3, h, w)`` -> ``(B, T, 3, 4h, 4w)``."""
        self.check_input(x)
        return self.propagate(x)
