"""PSRT-recurrent (Shi et al., "Rethinking Alignment in Video Super-Resolution Transformers",
NeurIPS 2022, Sec. 5, Fig. 6), faithful to the official ``BasicRecurrentSwin``.

BasicVSR++'s second-order grid propagation (four branches backward_1, forward_1, backward_2,
forward_2, each over the previous branch's features) with two changes: the alignment is patch
alignment (:func:`vsrlab.ops.patch_align`, nearest, 8x8 patches on the attention windows'
grid) of the features one and two steps back, and each step's fusion is a
:class:`~vsrlab.archs.mfsab.MultiFrameSwin` over the three frames ``[aligned i-1, current,
aligned i-2]`` instead of a residual CNN. At the first step the current features are fed three
times. Only the last branch reconstructs: conv 120 -> 64, two (conv, pixel shuffle x2,
LeakyReLU 0.1), conv_hr, conv_last, plus the LR frame upsampled x4 bilinearly.

Arguments, defaults and state-dict keys follow the release (``spynet``, ``conv_first``,
``patch_align.<branch>``, ``conv_before_upsample``, ``upconv1``, ``upconv2``, ``conv_hr``,
``conv_last``), so its ``params`` / ``params_ema`` checkpoints load with
``load_pretrained(..., strict=True)``. The official configuration (``embed_dim=120,
depths=(6, 6, 6), num_heads=(6, 6, 6), window_size=(3, 8, 8)``) has 13,366,943 parameters, the
paper's 13.4M. Differences from the release, none changing outputs: the branches are built
whether or not CUDA is available; ``cpu_cache_length`` caches on the CPU and computes on the
input's device, whatever it is; ``use_checkpoint`` (the release hard-codes activation
checkpointing in every Swin layer) is an argument, off by default, for training on long clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import Temporal
from vsrlab.archs.mfsab import MultiFrameSwin
from vsrlab.archs.propagation import (
    BRANCHES,
    check_flow_size,
    is_mirror_extended,
    neighbour_flows,
    second_order_flow,
)
from vsrlab.archs.spynet_arch import SPyNet
from vsrlab.ops.patch_align import patch_align


class PSRTRecurrent(nn.Module):
    """PSRT-recurrent: clip ``(B, T, 3, h, w)`` in ``[0, 1]``, h, w >= 64 -> ``(B, T, 3, 4h, 4w)``.

    Args:
        in_channels: image channels.
        mid_channels: channels of the reconstruction (64).
        embed_dim: transformer channels (120).
        depths, num_heads: Swin blocks and heads of each MFSAB in a branch's fusion module.
        window_size: attention window (frames, height, width); its spatial size is also the
            patch size of the patch alignment.
        num_frames: frames fused per step (3: aligned i-1, current, aligned i-2).
        img_size, patch_size: kept for the release's signature; no effect (patch size 1).
        cpu_cache_length: clips longer than this keep features and flows in CPU memory, moving
            each to the input's device when needed; the output is then returned on the CPU.
        is_low_res_input: True only (x4 super-resolution; the release has no working
            same-size path).
        spynet_path: SPyNet weights to load.
        use_checkpoint: activation checkpointing of every Swin block while gradients are on.
    """

    temporal: ClassVar[Temporal] = "recurrent"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    def __init__(
        self,
        in_channels: int = 3,
        mid_channels: int = 64,
        embed_dim: int = 120,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        window_size: Sequence[int] = (3, 8, 8),
        num_frames: int = 3,
        img_size: int = 64,
        patch_size: int = 1,
        cpu_cache_length: int = 100,
        is_low_res_input: bool = True,
        spynet_path: str | Path | None = None,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if not is_low_res_input:
            raise ValueError("PSRTRecurrent supports is_low_res_input=True only (x4 super-resolution)")
        if num_frames != 3:
            raise ValueError(
                f"PSRTRecurrent fuses 3 frames per step (i-1, i, i-2), got num_frames={num_frames}"
            )
        self.mid_channels, self.embed_dim = mid_channels, embed_dim
        self.window_size = tuple(window_size)
        self.cpu_cache_length = cpu_cache_length
        self.is_low_res_input = is_low_res_input
        self.is_mirror_extended = False
        self.cpu_cache = False
        # registration order as in the release, so state-dict keys come in its order
        self.conv_before_upsample = nn.Conv2d(embed_dim, mid_channels, 3, 1, 1)
        self.spynet = SPyNet(load_path=spynet_path)
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, 1, 1)
        self.patch_align = nn.ModuleDict(
            {
                name: MultiFrameSwin(
                    in_chans=in_channels,
                    embed_dim=embed_dim,
                    depths=depths,
                    num_heads=num_heads,
                    window_size=window_size,
                    mlp_ratio=2.0,
                    qkv_bias=True,
                    drop_path_rate=0.1,
                    patch_norm=True,
                    use_checkpoint=use_checkpoint,
                    num_frames=num_frames,
                )
                for name in BRANCHES
            }
        )
        self.upconv1 = nn.Conv2d(mid_channels, mid_channels * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(mid_channels, 64 * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.img_upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    @property
    def use_checkpoint(self) -> bool:
        return any(
            layer.residual_group.use_checkpoint for m in self.patch_align.values() for layer in m.layers
        )

    @use_checkpoint.setter
    def use_checkpoint(self, value: bool) -> None:
        for module in self.patch_align.values():
            for layer in module.layers:
                layer.residual_group.use_checkpoint = bool(value)

    def _cache_device(self, device: torch.device) -> torch.device:
        return torch.device("cpu") if self.cpu_cache else device

    def _align(self, feat: Tensor, flow: Tensor) -> Tensor:
        return patch_align(feat, flow, patch_size=self.window_size[1])

    def propagate(
        self, feats: dict[str, list[Tensor]], flows: Tensor, name: str, device: torch.device
    ) -> None:
        """Run branch ``name`` over the previous branch's features; store them in ``feats[name]``.

        ``flows`` ``(B, T-1, 2, h, w)`` are this direction's flows of
        :func:`~vsrlab.archs.propagation.neighbour_flows`.
        """
        source = feats[("spatial", *BRANCHES)[BRANCHES.index(name)]]
        t = len(source)
        backward = name.startswith("backward")
        order = range(t - 1, -1, -1) if backward else range(t)
        step_back = 1 if backward else -1
        cache = self._cache_device(device)
        fuse = self.patch_align[name]
        out: list[Tensor | None] = [None] * t
        feat_prop: Tensor | None = None
        for step, idx in enumerate(order):
            feat_current = source[idx].to(device)
            if step == 0:
                cond = torch.stack([feat_current] * 3, dim=1)
            else:
                flow_k = idx if backward else idx - 1
                flow_n1 = flows[:, flow_k].to(device)
                cond_n1 = self._align(feat_prop, flow_n1)
                if step > 1:
                    flow_n2 = second_order_flow(flow_n1, flows[:, flow_k + step_back].to(device))
                    cond_n2 = self._align(out[idx + 2 * step_back].to(device), flow_n2)
                else:
                    cond_n2 = torch.zeros_like(cond_n1)
                cond = torch.stack([cond_n1, feat_current, cond_n2], dim=1)
            feat_prop = fuse(cond)
            out[idx] = feat_prop.to(cache)
        feats[name] = out  # type: ignore[assignment]

    def upsample(self, lqs: Tensor, feats: list[Tensor], device: torch.device) -> Tensor:
        """Reconstruct every frame from the last branch's features: ``(B, T, 3, 4h, 4w)``."""
        cache = self._cache_device(device)
        outputs = []
        for i in range(lqs.shape[1]):
            hr = self.conv_before_upsample(feats[i].to(device))
            hr = self.lrelu(self.pixel_shuffle(self.upconv1(hr)))
            hr = self.lrelu(self.pixel_shuffle(self.upconv2(hr)))
            hr = self.conv_last(self.lrelu(self.conv_hr(hr)))
            hr = hr + self.img_upsample(lqs[:, i].to(device))
            outputs.append(hr.to(cache))
        return torch.stack(outputs, dim=1)

    def forward(self, lqs: Tensor) -> Tensor:
        """``lqs`` ``(B, T, 3, h, w)``, T >= 2, h, w >= 64 -> ``(B, T, 3, 4h, 4w)``."""
        if lqs.dim() != 5 or lqs.shape[1] < 2:
            raise ValueError(
                f"PSRTRecurrent expects clips (B, T, C, h, w) with T >= 2, got {tuple(lqs.shape)}"
            )
        b, t, c, h, w = lqs.shape
        check_flow_size("PSRTRecurrent", h, w)
        device = lqs.device
        self.cpu_cache = t > self.cpu_cache_length
        cache = self._cache_device(device)
        self.is_mirror_extended = is_mirror_extended(lqs)
        if self.cpu_cache:
            spatial = [self.conv_first(lqs[:, i]).to(cache) for i in range(t)]
        else:
            spatial = list(self.conv_first(lqs.reshape(-1, c, h, w)).view(b, t, -1, h, w).unbind(1))
        feats: dict[str, list[Tensor]] = {"spatial": spatial}
        flows_forward, flows_backward = (
            f.to(cache) for f in neighbour_flows(self.spynet, lqs, self.is_mirror_extended)
        )
        for name in BRANCHES:
            self.propagate(
                feats, flows_backward if name.startswith("backward") else flows_forward, name, device
            )
        return self.upsample(lqs, feats["forward_2"], device)
