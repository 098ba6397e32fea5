"""IconVSR: BasicVSR with information refill and coupled propagation.

Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution and
Beyond", CVPR 2021, Sec. 4 and Fig. 5:

- information refill (Sec. 4.1): at keyframes (every ``keyframe_stride``-th frame and the last
  one) features ``E(x_{i-p}, ..., x_{i+p})`` of an EDVR-M feature extractor (pyramid, PCD
  alignment, TSA fusion) are fused with the warped hidden state by a 3x3 convolution,
  ``h_i = C_b([E_i, W(h_{i+1}, s_i)])`` (``C_f`` in the forward branch), before the residual blocks;
  elsewhere the warped state passes unchanged;
- coupled propagation (Sec. 4.2): the forward branch also takes the backward branch's state of
  the same frame, ``f_i = R_f([x_i, b_i, h^f_i])``, and its output is upsampled directly
  (no separate fusion convolution).

Module names and the forward computation follow BasicSR's ``IconVSR`` and
``EDVRFeatureExtractor`` (``basicsr/archs/basicvsr_arch.py``), so its checkpoints load
unchanged; MMagic's (``IconVSRNet``) load through :func:`vsrlab.archs.load_pretrained`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.basicvsr_arch import BidirectionalRecurrentVSR
from vsrlab.archs.blocks import ConvResidualBlocks, ResidualBlockNoBN, make_layer
from vsrlab.archs.pcd_tsa import PCDAlignment, TSAFusion, broadcast_reference, feature_pyramid
from vsrlab.archs.pretrained import IncompatibleCheckpointError, load_pretrained

log = logging.getLogger(__name__)


class EDVRFeatureExtractor(nn.Module):
    """EDVR-M without its reconstruction: the refill features of IconVSR (Sec. 4.1).

    Per-frame features (``conv_first`` + 5 residual blocks), a 3-level pyramid, PCD alignment of
    every frame to the centre frame (8 deformable groups) and TSA fusion, with EDVR's parameter
    names, so the matching part of an EDVR-M checkpoint loads.

    Args:
        num_input_frame: frames per window (``2 * temporal_padding + 1``); the centre one is the
            reference.
        num_feat: feature channels.
        load_path: EDVR checkpoint (BasicSR or MMagic layout). Keys of EDVR's reconstruction
            part, which this module lacks, are skipped and logged; missing keys or shape
            mismatches raise :class:`vsrlab.archs.IncompatibleCheckpointError`.

    ``forward``: ``(B, T, 3, h, w)`` -> ``(B, num_feat, h, w)``; ``h``, ``w`` multiples of 4.
    """

    # MMagic's EDVRNet names the pyramid convolutions ``feat_l{2,3}_conv{1,2}`` and the PCD module
    # ``pcd_alignment``
    MMAGIC_KEY_RENAMES = [(r"feat_l(\d)_conv(\d)\.", r"conv_l\1_\2."), (r"pcd_alignment\.", "pcd_align.")]

    def __init__(
        self, num_input_frame: int = 5, num_feat: int = 64, load_path: str | Path | None = None
    ) -> None:
        super().__init__()
        self.center_frame_idx = num_input_frame // 2
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(ResidualBlockNoBN, 5, num_feat=num_feat)
        self.conv_l2_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.pcd_align = PCDAlignment(num_feat=num_feat, deformable_groups=8)
        self.fusion = TSAFusion(num_feat, num_input_frame, self.center_frame_idx)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        self.skipped_keys: list[str] = []
        if load_path:
            self.load(load_path)

    def load(self, path: str | Path) -> None:
        """Load the extractor's part of an EDVR checkpoint; the skipped keys end up in ``skipped_keys``."""
        report = load_pretrained(self, path, strict=False)
        if report["missing"] or report["mismatched"]:
            raise IncompatibleCheckpointError(
                f"{path} does not hold an EDVR feature extractor of this size: "
                f"missing keys {report['missing'][:12]}, shape mismatches {report['mismatched'][:12]}"
            )
        self.skipped_keys = report["unexpected"]
        if self.skipped_keys:
            log.warning(
                "EDVRFeatureExtractor: skipped %d keys of %s not used by the extractor: %s",
                len(self.skipped_keys),
                path,
                ", ".join(self.skipped_keys),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, 3, h, w)`` window -> ``(B, num_feat, h, w)`` fused features of its centre frame."""
        b, t, c, h, w = x.shape
        feat_l1 = self.feature_extraction(self.lrelu(self.conv_first(x.reshape(b * t, c, h, w))))
        nbr = feature_pyramid(self, feat_l1)
        # every frame, the centre one too, aligned to the centre in one batch of B*T
        aligned = self.pcd_align(nbr, [broadcast_reference(f, t, self.center_frame_idx) for f in nbr])
        return self.fusion(aligned.view(b, t, *aligned.shape[1:]))


class IconVSR(BidirectionalRecurrentVSR):
    """IconVSR (Chan et al., CVPR 2021, Sec. 4, Fig. 5), x4.

    Args:
        num_feat: channels of the hidden states (64 in the paper).
        num_block: residual blocks per propagation branch (30 in the paper: 8.7M parameters).
        keyframe_stride: frames ``0, s, 2s, ...`` and the last frame are keyframes.
        temporal_padding: ``p``, the refill window is ``2p + 1`` frames (2 for REDS, 3 for
            Vimeo-90K). At the clip ends the window is filled with frames ``2p, ..., p+1``
            before the first frame and ``T-p-2, ..., T-2p-1`` after the last, as BasicSR and
            MMagic do, so clips need at least ``2p + 1`` frames.
        spynet_path: SPyNet checkpoint, loaded strictly.
        edvr_path: EDVR-M checkpoint for the refill extractor (see :class:`EDVRFeatureExtractor`).

    ``forward``: ``(B, T, 3, h, w)`` LR clip in ``[0, 1]`` -> ``(B, T, 3, 4h, 4w)``; frames whose
    sides are not multiples of 4 (needed by the PCD pyramid) are reflect-padded and the output
    cropped back, as in BasicSR.
    """

    # activation checkpointing with model.checkpointing=true (vsrlab.models.speed): the per-call blocks
    checkpoint_modules = ("backward_trunk", "forward_trunk")

    def __init__(
        self,
        num_feat: int = 64,
        num_block: int = 15,
        keyframe_stride: int = 5,
        temporal_padding: int = 2,
        spynet_path: str | Path | None = None,
        edvr_path: str | Path | None = None,
    ) -> None:
        super().__init__(num_feat, spynet_path)
        if keyframe_stride < 1 or temporal_padding < 0:
            raise ValueError(
                f"need keyframe_stride >= 1 and temporal_padding >= 0, "
                f"got {keyframe_stride} and {temporal_padding}"
            )
        self.keyframe_stride = keyframe_stride
        self.temporal_padding = temporal_padding
        self.edvr = EDVRFeatureExtractor(2 * temporal_padding + 1, num_feat, edvr_path)
        self.backward_fusion = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.backward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.forward_fusion = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.forward_trunk = ConvResidualBlocks(2 * num_feat + 3, num_feat, num_block)

    def keyframe_indices(self, num_frames: int) -> list[int]:
        """``0, s, 2s, ...`` and ``num_frames - 1``."""
        idx = list(range(0, num_frames, self.keyframe_stride))
        return idx if idx[-1] == num_frames - 1 else [*idx, num_frames - 1]

    def refill_features(self, x: Tensor) -> dict[int, Tensor]:
        """EDVR features ``(B, F, h, w)`` of every keyframe, each from its ``2p + 1``-frame window."""
        p, t = self.temporal_padding, x.shape[1]
        head = list(range(2 * p, p, -1))
        tail = [t - p - 2 - k for k in range(p)]
        padded = torch.cat([x[:, head], x, x[:, tail]], 1)
        # one window at a time: whole-clip inputs make a batch of all windows too large
        return {i: self.edvr(padded[:, i : i + 2 * p + 1]) for i in self.keyframe_indices(t)}

    def forward_step(self, lr: Tensor, feat_backward: Tensor, feat_prop: Tensor) -> tuple[Tensor, Tensor]:
        """Coupled propagation: the forward state also sees the backward state; it is upsampled as is."""
        feat_prop = self.forward_trunk(torch.cat([lr, feat_backward, feat_prop], 1))
        return feat_prop, feat_prop

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, 3, h, w)`` -> ``(B, T, 3, 4h, 4w)``."""
        self.check_input(x)
        b, t, c, h, w = x.shape
        if t < 2 * self.temporal_padding + 1:
            raise ValueError(
                f"IconVSR with temporal_padding={self.temporal_padding} needs clips of at least "
                f"{2 * self.temporal_padding + 1} frames, got {t}"
            )
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = F.pad(x.reshape(b * t, c, h, w), [0, pad_w, 0, pad_h], mode="reflect")
            x = x.view(b, t, c, h + pad_h, w + pad_w)
        return self.propagate(x)[..., : 4 * h, : 4 * w]
