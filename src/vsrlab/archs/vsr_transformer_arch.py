"""The sliding-window VSR Transformer of Shi et al., "Rethinking Alignment in Video Super-Resolution
Transformers" (NeurIPS 2022), Sec. 3-4, with the paper's five kinds of alignment.

The official repository holds no VSR-Transformer baseline and no alignment-ablation code; this
network is built from the paper's description. A window of ``num_frame`` LR frames goes through

1. optional alignment of the LR neighbours to the centre frame (``image`` alignment, or ``patch``
   alignment at ``position='image'``);
2. shallow features per frame: ``conv_first`` (3 -> ``embed_dim``, 3x3), then
   ``num_extract_blocks`` residual blocks (LeakyReLU 0.1 after ``conv_first`` when there are any);
3. optional alignment of the neighbours' features (``feature``, ``fgdc``, or ``patch`` at
   ``position='feature'``);
4. a stack of multi-frame self-attention blocks (:class:`~vsrlab.archs.mfsab.MFSAB`: Swin blocks
   with 3-D windows ``(d, s, s)`` over all frames, then a 3x3 conv per frame, plus the block
   input) between a LayerNorm after the embedding and one at the end; a 3x3 conv on the centre
   frame's tokens plus the centre frame's aligned shallow features (SwinIR's body residual);
5. PSRT's reconstruction: conv ``embed_dim`` -> ``mid_channels``, two (conv, pixel shuffle x2,
   LeakyReLU 0.1), ``conv_hr`` + LeakyReLU, ``conv_last``, plus the centre LR frame upsampled x4
   bilinearly (``align_corners=False``).

Alignment variants (``alignment``), the rows of the paper's alignment study and patch-alignment table:

- ``none``: frames enter the transformer as they are.
- ``image``: SPyNet flows from the centre frame to each neighbour warp the LR neighbours
  (:func:`~vsrlab.ops.flow_warp`, ``interpolation``, zeros outside) before ``conv_first``.
- ``feature``: the same flows warp the neighbours' shallow features.
- ``fgdc``: flow-guided deformable alignment of the shallow features, first order, in the manner
  of BasicVSR++: a :class:`~vsrlab.ops.DeformableAlignment` (G = ``deformable_groups`` x
  N = ``num_offsets`` offsets, modulated, N = 9 on the 3x3 kernel grid = DCNv2) whose offsets are
  the flow plus a learned residue ``max_residue_magnitude * tanh(.)``, predicted by four 3x3
  convs (LeakyReLU 0.1 between; the last zero-initialised, so training starts from the flow) from
  ``cat(flow-warped neighbour features, centre features, flow)``.
- ``patch``: patch alignment (:func:`~vsrlab.ops.patch_align`): patches of the attention window's
  spatial size, on the windows' grid, move by their mean flow, ``interpolation`` nearest (the
  paper's) or bilinear (its "BI" rows), on the LR frames or on the features (``position``).

Choices the paper leaves open, made here:

- **Temporal window.** ``window_size[0]`` must divide ``num_frame`` (default: equal to it, one
  window spans all 5 frames). The MFSAB's shifted blocks shift by the whole temporal window (as
  PSRT's release does), which leaves the temporal grouping unchanged, so a smaller temporal
  window would cut the frames into groups that never exchange information: with 5 frames and
  d = 3, frames 3 and 4 would never reach the centre. ``d = 1`` is a single-frame ablation.
- **Flows** come from one SPyNet (:class:`~vsrlab.archs.SPyNet`, BasicSR layout, ``spynet_path``)
  applied to (centre, neighbour) LR pairs, in the direction :func:`~vsrlab.ops.flow_warp` expects;
  the centre frame's flow is zero and it is never resampled, except by ``fgdc``, which passes every
  frame, the centre included (zero flow), through the same deformable convolution so that all
  frames reach the transformer in one feature space (EDVR's PCD aligns the reference frame to
  itself too; the module's offsets for all frames come from one call of batch ``B*T``).
  ``forward(x, flows=...)`` takes given flows instead (e.g. the true flow of synthetic clips).
  SPyNet resizes its inputs to at least 64x64, so any frame size runs; small frames get poor flow.
- **Fixed or fine-tuned flow** (``flow_finetune``, the paper's "fixed flow" / "finetuned flow"):
  fixed, SPyNet's parameters have ``requires_grad=False`` and its flows are computed under
  ``no_grad``; they stay in the state dict (and in the ``total`` parameter count of a run's
  ``metrics.json``) but not in its ``trainable`` count. The counts below are *trainable*
  parameters: the paper's 12.9M for image alignment equals its no-alignment model, so its image
  alignment did not count a fixed SPyNet, while its feature alignment (+1.9M) and FGDC (+3.2M) do
  count a fine-tuned SPyNet (1,440,300) plus their own layers. Nearest sampling (feature or
  patch alignment) passes no gradient to the flow (a patch moves by its rounded mean), so a
  fine-tuned SPyNet gets zero gradients there; the bilinear rows and FGDC train it.
- **Shared feature extractor.** The extra layers before alignment (``num_extract_blocks``) are the
  same for every variant, so the variants differ by their alignment only; the default is 0
  (``conv_first`` alone, SwinIR's shallow feature extraction). The paper's feature alignment
  counts about 0.46M more than its no-alignment model plus SPyNet, which suggests extra layers in
  that variant alone; they are not reproduced (with them the variants would differ in capacity
  too).
- **Precision.** Alignment (SPyNet, warps, the deformable alignment, and ``conv_first`` before
  them) runs in float32 even under mixed precision (autocast off); the transformer and the
  reconstruction follow autocast. In float16, pixel coordinates of 256 and more are spaced 0.25 px
  apart (and normalised ones ~0.001, 0.16 px across 320 columns), coarser than the sub-pixel
  differences between the variants under study; the alignment is a small part of the compute.
- **Interpolation** (``interpolation=None``): bilinear for ``image`` / ``feature``, nearest for
  ``patch`` (the paper's defaults); ``fgdc`` always samples bilinearly.
- **Size.** The MFSAB of PSRT (``embed_dim=120``, six Swin blocks per MFSAB, six heads of dim 20,
  MLP ratio 2, spatial window 8), stacked 14 times: the number of MFSABs that puts the no-alignment
  model nearest the paper's 12.9M (13 give 12,259,447, 14 give 13,161,187; SwinIR's x4 body,
  ``embed_dim=180`` and six MFSABs of six blocks, gives 12,325,927). FGDC uses G = 15 offset groups
  (8 channels per group, as EDVR and BasicVSR++) of N = 9 offsets.

  Trainable parameters at the defaults (window ``(5, 8, 8)``), beside the paper's alignment study:

  ======================================  ==========  ======  ==========
  variant (``alignment``, flow)           ours        paper   ours/paper
  ======================================  ==========  ======  ==========
  none                                    13,161,187  12.9M   1.020
  image, fixed flow                       13,161,187  12.9M   1.020
  image, fine-tuned flow                  14,601,487  --
  feature (bilinear or nearest)           14,601,487  14.8M   0.987
  fgdc (G = 15, N = 9)                    15,689,932  16.1M   0.975
  patch, fine-tuned flow (either place)   14,601,487  --
  patch, fixed flow                       13,161,187  --
  ======================================  ==========  ======  ==========

  A fixed SPyNet adds its 1,440,300 parameters to the total only; FGDC's own layers are 1,088,445
  (the paper's FGDC adds 3.2M to its no-alignment model, ours 2.53M). A spatial window of 16 adds
  3,338,496 parameters (the relative position tables of 84 Swin blocks grow from 2,025 to 8,649
  rows).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import ResidualBlockNoBN, center_frame_index, make_layer
from vsrlab.archs.contract import Temporal
from vsrlab.archs.mfsab import FrameFusion
from vsrlab.archs.spynet_arch import SPyNet
from vsrlab.ops import DeformableAlignment, flow_warp, patch_align

Alignment = Literal["none", "image", "feature", "fgdc", "patch"]
Position = Literal["image", "feature"]
ALIGNMENTS: tuple[str, ...] = ("none", "image", "feature", "fgdc", "patch")
USES_FLOW = ("image", "feature", "fgdc", "patch")


class VSRTransformer(FrameFusion):
    """Sliding-window VSR Transformer: ``(B, num_frame, 3, h, w)`` in ``[0, 1]`` -> ``(B, 3, s*h, s*w)``.

    Args:
        num_in_ch, num_out_ch: image channels (flows need RGB: ``num_in_ch`` 3 unless ``alignment='none'``).
        num_frame: frames per window.
        center_frame_idx: frame to super-resolve (default ``num_frame // 2``).
        embed_dim: transformer channels C.
        depths: Swin blocks of each MFSAB (its length is the number of MFSABs).
        num_heads: attention heads of each MFSAB.
        window_size: attention window ``(d, s, s)``: frames, height, width. ``d`` must divide
            ``num_frame``; ``s`` is also the patch size of patch alignment (square windows then).
        mlp_ratio, qkv_bias, drop_path_rate, patch_norm: as SwinIR / PSRT (stochastic depth rates
            ``linspace(0, drop_path_rate)`` over all blocks; ``patch_norm``: LayerNorm after the embedding).
        mid_channels: channels of the reconstruction.
        num_extract_blocks: residual blocks after ``conv_first``, before feature alignment (every variant).
        alignment: ``'none'``, ``'image'``, ``'feature'``, ``'fgdc'`` or ``'patch'`` (module docstring).
        position: where patch alignment runs, ``'image'`` (LR frames) or ``'feature'``; patch only.
        interpolation: ``'bilinear'`` or ``'nearest'`` resampling of image, feature and patch
            alignment; None: bilinear for image / feature, nearest for patch.
        flow_finetune: train SPyNet with the network (True) or keep its flow fixed (False: frozen).
        spynet_path: SPyNet weights (BasicSR or MMagic file).
        deformable_groups: G of ``fgdc``; divides ``embed_dim``.
        num_offsets: N of ``fgdc`` (9: a 3x3 DCN; other N: free warps).
        max_residue_magnitude: bound of ``fgdc``'s learned residue to the flow, pixels (BasicVSR++'s 10).
        upscale: SR factor, a power of two.
        use_checkpoint: activation checkpointing of every Swin block while gradients are on.
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = ("deformable_groups", "num_offsets")

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_frame: int = 5,
        center_frame_idx: int | None = None,
        embed_dim: int = 120,
        depths: Sequence[int] = (6,) * 14,
        num_heads: Sequence[int] = (6,) * 14,
        window_size: Sequence[int] = (5, 8, 8),
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        mid_channels: int = 64,
        num_extract_blocks: int = 0,
        alignment: Alignment = "none",
        position: Position = "feature",
        interpolation: Literal["bilinear", "nearest"] | None = None,
        flow_finetune: bool = True,
        spynet_path: str | Path | None = None,
        deformable_groups: int = 15,
        num_offsets: int = 9,
        max_residue_magnitude: float = 10.0,
        upscale: int = 4,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}; got {alignment!r}")
        if position not in ("image", "feature"):
            raise ValueError(f"position must be 'image' or 'feature', got {position!r}")
        if interpolation not in (None, "bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear', 'nearest' or null, got {interpolation!r}")
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(
                f"depths {list(depths)} and num_heads {list(num_heads)} must have one entry per MFSAB"
            )
        if len(window_size) != 3:
            raise ValueError(f"window_size must be (frames, height, width), got {list(window_size)}")
        if num_frame % window_size[0]:
            raise ValueError(
                f"window_size[0]={window_size[0]} must divide num_frame={num_frame}: the shifted blocks "
                "shift by the whole temporal window, so frames in other temporal windows would never "
                "reach the centre"
            )
        if alignment == "patch" and window_size[1] != window_size[2]:
            raise ValueError(f"patch alignment needs a square spatial window, got {list(window_size)}")
        if alignment in USES_FLOW and num_in_ch != 3:
            raise ValueError(f"SPyNet estimates flow on RGB frames: num_in_ch must be 3, got {num_in_ch}")
        num_stages = round(math.log2(upscale)) if upscale >= 2 else 0
        if 2**num_stages != upscale:
            raise ValueError(f"upscale must be a power of two (x2 pixel-shuffle stages), got {upscale}")

        self.num_frame = num_frame
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        self.embed_dim, self.upscale = embed_dim, upscale
        self.alignment, self.position, self.flow_finetune = alignment, position, flow_finetune
        default = "nearest" if alignment == "patch" else "bilinear"
        self.interpolation: Literal["bilinear", "nearest"] = interpolation or default  # type: ignore[assignment]

        # flows
        self.spynet = SPyNet(load_path=spynet_path) if alignment in USES_FLOW else None
        if self.spynet is not None and not flow_finetune:
            self.spynet.requires_grad_(False)
            if not spynet_path:
                warnings.warn(
                    "VSRTransformer: fixed flow (flow_finetune=False) from a SPyNet without weights "
                    "(spynet_path is null) is meaningless (fine for smoke tests only)",
                    stacklevel=2,
                )

        # shallow features
        self.conv_first = nn.Conv2d(num_in_ch, embed_dim, 3, 1, 1)
        self.feature_extraction = (
            nn.Sequential(
                nn.LeakyReLU(0.1, inplace=True),
                make_layer(ResidualBlockNoBN, num_extract_blocks, num_feat=embed_dim),
            )
            if num_extract_blocks > 0
            else nn.Identity()
        )

        # flow-guided deformable alignment
        self.deform_align: DeformableAlignment | None = None
        if alignment == "fgdc":
            per_offset = 3 * deformable_groups * num_offsets  # offsets (2) and masks (1) per offset
            conv_offset = nn.Sequential(
                nn.Conv2d(2 * embed_dim + 2, embed_dim, 3, 1, 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(embed_dim, embed_dim, 3, 1, 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(embed_dim, embed_dim, 3, 1, 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(embed_dim, per_offset, 3, 1, 1),
            )
            self.deform_align = DeformableAlignment(
                embed_dim,
                embed_dim,
                2 * embed_dim + 2,
                offset_groups=deformable_groups,
                num_offsets=num_offsets,
                modulated=True,
                max_residue_magnitude=max_residue_magnitude,
                conv_offset=conv_offset,
            )

        # transformer body
        self.build_fusion(
            embed_dim,
            window_size,
            patch_norm,
            depths=depths,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            use_checkpoint=use_checkpoint,
        )

        # reconstruction (PSRT's)
        self.conv_before_upsample = nn.Conv2d(embed_dim, mid_channels, 3, 1, 1)
        for i in range(num_stages):
            self.add_module(f"upconv{i + 1}", nn.Conv2d(mid_channels, mid_channels * 4, 3, 1, 1))
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(mid_channels, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        self.num_upsample = num_stages

    # ------------------------------------------------------------------ alignment
    def compute_flows(self, x: Tensor) -> Tensor:
        """Flows ``(B, T, 2, h, w)`` from the centre frame to every frame of ``x`` ``(B, T, 3, h, w)``:
        ``flow_warp(x[:, t], flows[:, t])`` aligns frame ``t`` to the centre; the centre's flow is zero."""
        if self.spynet is None:
            raise ValueError(f"alignment={self.alignment!r} uses no flow")
        b, t, c, h, w = x.shape
        ci = self.center_frame_idx
        neighbours = [i for i in range(t) if i != ci]
        ref = x[:, ci : ci + 1].expand(-1, t - 1, -1, -1, -1).reshape(-1, c, h, w)
        supp = x[:, neighbours].reshape(-1, c, h, w)
        with torch.set_grad_enabled(self.flow_finetune and torch.is_grad_enabled()):
            flows = self.spynet(ref, supp).view(b, t - 1, 2, h, w)
        zero = flows.new_zeros(b, 1, 2, h, w)
        return torch.cat([flows[:, :ci], zero, flows[:, ci:]], dim=1)

    def _warp_neighbours(self, frames: Tensor, flows: Tensor, patch: bool) -> Tensor:
        """Warp (or patch-align) every frame but the centre of ``frames`` ``(B, T, K, h, w)``."""
        b, t, k, h, w = frames.shape
        ci = self.center_frame_idx
        neighbours = [i for i in range(t) if i != ci]
        src = frames[:, neighbours].reshape(-1, k, h, w)
        flow = flows[:, neighbours].reshape(-1, 2, h, w)
        if patch:
            warped = patch_align(src, flow, self.window_size[1], self.interpolation)
        else:
            warped = flow_warp(src, flow, interpolation=self.interpolation)
        warped = warped.view(b, t - 1, k, h, w)
        return torch.cat([warped[:, :ci], frames[:, ci : ci + 1], warped[:, ci:]], dim=1)

    def _deform_align(self, feats: Tensor, flows: Tensor) -> Tensor:
        """Flow-guided deformable alignment of every frame of ``feats`` ``(B, T, C, h, w)``, in one
        call of batch ``B*T`` (the centre with zero flow)."""
        assert self.deform_align is not None
        b, t, c, h, w = feats.shape
        ci = self.center_frame_idx
        flat = feats.reshape(-1, c, h, w)
        flow = flows.reshape(-1, 2, h, w)
        centre = feats[:, ci : ci + 1].expand(-1, t, -1, -1, -1).reshape(-1, c, h, w)
        cond = torch.cat([flow_warp(flat, flow), centre, flow], dim=1)
        return self.deform_align(flat, cond, flow=flow).view(b, t, c, h, w)

    def extract(self, frames: Tensor) -> Tensor:
        """Shallow features ``(B, T, embed_dim, h, w)`` of ``frames`` ``(B, T, C, h, w)``."""
        b, t, c, h, w = frames.shape
        feat = self.feature_extraction(self.conv_first(frames.reshape(-1, c, h, w)))
        return feat.view(b, t, -1, h, w)

    def align(self, x: Tensor, flows: Tensor | None = None) -> Tensor:
        """Aligned shallow features ``(B, T, embed_dim, h, w)`` of the window ``x`` ``(B, T, 3, h, w)``."""
        if self.alignment == "none":
            return self.extract(x)
        if flows is None:
            flows = self.compute_flows(x)
        elif flows.shape != (x.shape[0], x.shape[1], 2, *x.shape[-2:]):
            raise ValueError(
                f"flows must be (B, T, 2, h, w) for x {tuple(x.shape)}, got {tuple(flows.shape)}"
            )
        patch = self.alignment == "patch"
        if self.alignment == "image" or (patch and self.position == "image"):
            return self.extract(self._warp_neighbours(x, flows, patch))
        feats = self.extract(x)
        if self.alignment == "fgdc":
            return self._deform_align(feats, flows)
        return self._warp_neighbours(feats, flows, patch)

    # ------------------------------------------------------------------ body and reconstruction
    def body(self, feats: Tensor) -> Tensor:
        """MFSABs over ``(B, T, C, h, w)`` features -> the centre frame's ``(B, C, h, w)``."""
        return self.fuse_frames(feats, self.center_frame_idx)

    def reconstruct(self, feat: Tensor, centre: Tensor) -> Tensor:
        """``(B, C, h, w)`` centre features and LR centre frame -> ``(B, out, s*h, s*w)``."""
        out = self.conv_before_upsample(feat)
        for i in range(self.num_upsample):
            out = self.lrelu(self.pixel_shuffle(getattr(self, f"upconv{i + 1}")(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(centre, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return out + base

    def forward(self, x: Tensor, flows: Tensor | None = None) -> Tensor:
        """``x`` ``(B, T, 3, h, w)`` -> ``(B, 3, s*h, s*w)``.

        ``flows`` ``(B, T, 2, h, w)`` (from the centre frame to each frame, zero at the centre) replace
        SPyNet's when given; ignored by ``alignment='none'``.
        """
        if x.dim() != 5 or x.shape[1] != self.num_frame:
            raise ValueError(f"expected windows (B, {self.num_frame}, C, h, w), got {tuple(x.shape)}")
        # flows and resampling in float32 under mixed precision (autocast): see the module docstring
        with torch.autocast(x.device.type, enabled=False):
            feats = self.align(x.float(), None if flows is None else flows.float())
        feat = self.body(feats)
        return self.reconstruct(feat, x[:, self.center_frame_idx])
