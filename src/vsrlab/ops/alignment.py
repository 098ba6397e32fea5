"""Generalised deformable alignment: G offset groups x N offsets, fused by a 1x1 convolution.

Chan et al., "Understanding Deformable Alignment in Video Super-Resolution" (AAAI 2021):
Sec. 3.1 / Eq. 3 decompose a deformable convolution into N spatial warps and a convolution;
Sec. 3.2 generalises it to G offset groups (each group of C/G channels has its own N offsets)
and any N. N = k*k offsets added to the k x k kernel grid is exactly a k x k DCN (DCNv2 when
modulated); G = N = 1 with no kernel grid is flow-based alignment followed by a 1x1
convolution; N and G in between give the offset-diversity study (Fig. 9, Fig. 16).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.ops.deform_conv import deform_sample, fuse_taps, kernel_taps

OffsetBase = Literal["auto", "kernel", "zero"]
OffsetInit = Literal["zero", "grid"]


def nearest_grid_taps(num_offsets: int, dilation: int = 1) -> Tensor:
    """The ``num_offsets`` integer positions nearest the pixel (Euclidean; ties by ``(dy, dx)``), in
    row-major order: ``(N, 2)`` ``(dy, dx)``. For an odd square N they are the ``sqrt(N) x sqrt(N)``
    kernel grid in :func:`kernel_taps`' order (N = 9: the 3x3 DCN's taps); N = 5 is the centre and its
    four neighbours."""
    radius = math.isqrt(num_offsets) + 1
    ring = range(-radius, radius + 1)
    points = sorted((dy * dy + dx * dx, dy, dx) for dy in ring for dx in ring)[:num_offsets]
    return torch.tensor(sorted((dy, dx) for _, dy, dx in points), dtype=torch.float32) * dilation


def _odd_square_side(n: int) -> int | None:
    k = math.isqrt(n)
    return k if k * k == n and k % 2 == 1 else None


class DeformableAlignment(nn.Module):
    """Align a feature map by G x N learned warps (Eq. 3 of Chan et al. 2021).

    ``forward(x, cond, flow=None)`` predicts ``2*G*N`` offsets (and ``G*N`` sigmoid masks when
    ``modulated``) from ``cond`` with one 3x3 convolution (zero-initialised, as DCNv2 packs are),
    warps every channel group of ``x`` by its N offsets and fuses the ``C*N`` warped channels
    with a 1x1 convolution.

    The parameters are laid out as in BasicSR's ``DCNv2Pack``: ``weight``
    ``(out, in, k, k)`` for kernel-grid offsets (``(out, in, 1, N)`` otherwise), ``bias``,
    ``conv_offset``; the predicted channels split into ``o1, o2, mask`` thirds with
    ``offset = cat(o1, o2)``.

    Args:
        in_channels: channels ``C`` of the feature to align; divisible by ``offset_groups``.
        out_channels: output channels.
        cond_channels: channels of the feature the offsets are predicted from.
        offset_groups: G.
        num_offsets: N.
        modulated: predict a mask per offset (DCNv2).
        offset_base: ``'kernel'`` adds the offsets to a ``sqrt(N) x sqrt(N)`` kernel grid (DCN),
            ``'zero'`` uses them as free warps (flow-like); ``'auto'`` picks ``'kernel'`` when
            N is an odd square, else ``'zero'``. N = 1 is the same in both.
        dilation: dilation of the kernel grid.
        max_residue_magnitude: if set, offsets are ``max_residue_magnitude * tanh(o)`` (BasicVSR++).
        bias: learn a bias in the fusion convolution.
        conv_offset: a network to predict the ``(3 if modulated else 2) * G * N`` offset/mask
            channels from ``cond`` in place of the single 3x3 convolution (BasicVSR++ uses four
            convolutions); its last layer is zero-initialised.
        offset_init: where free offsets (``offset_base='zero'``) start: ``'zero'`` (every warp at
            the pixel) or ``'grid'``, the N integer positions nearest it (:func:`nearest_grid_taps`,
            set through the last layer's bias): with N = 9 the decomposition then starts as the 3x3
            DCN it decomposes (Chan et al., Table 1), equal to it for the same weights.

    After each call, ``last_offset`` ``(B, 2*G*N, H, W)`` (``(dy, dx)`` pairs, relative to the
    kernel grid, flow prior included) and ``last_mask`` ``(B, G*N, H, W)`` or ``None`` hold
    what was used, for losses (offset fidelity) and analysis (offset diversity and overflow).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int,
        offset_groups: int = 8,
        num_offsets: int = 9,
        modulated: bool = True,
        offset_base: OffsetBase = "auto",
        dilation: int = 1,
        max_residue_magnitude: float | None = None,
        bias: bool = True,
        conv_offset: nn.Module | None = None,
        offset_init: OffsetInit = "zero",
    ) -> None:
        super().__init__()
        if offset_groups < 1 or num_offsets < 1:
            raise ValueError(
                f"offset_groups and num_offsets must be >= 1, got G={offset_groups}, N={num_offsets}"
            )
        if in_channels % offset_groups:
            raise ValueError(
                f"in_channels ({in_channels}) must be divisible by offset_groups ({offset_groups})"
            )
        side = _odd_square_side(num_offsets)
        if offset_base == "auto":
            offset_base = "kernel" if side is not None else "zero"
        if offset_base == "kernel":
            if side is None:
                raise ValueError(
                    f"offset_base='kernel' needs N to be an odd square (1, 9, 25, ...), "
                    f"got num_offsets={num_offsets}"
                )
            taps = kernel_taps(side, dilation, dilation * (side // 2))
            tap_shape: tuple[int, int] = (side, side)
        elif offset_base == "zero":
            taps = torch.zeros(num_offsets, 2)
            tap_shape = (1, num_offsets)
        else:
            raise ValueError(f"offset_base must be 'auto', 'kernel' or 'zero', got {offset_base!r}")

        if offset_init not in ("zero", "grid"):
            raise ValueError(f"offset_init must be 'zero' or 'grid', got {offset_init!r}")
        if offset_init == "grid" and offset_base != "zero":
            raise ValueError("offset_init='grid' places free offsets (offset_base='zero') on a grid")
        self.offset_init, self.dilation = offset_init, dilation
        self.in_channels, self.out_channels = in_channels, out_channels
        self.offset_groups, self.num_offsets = offset_groups, num_offsets
        self.modulated, self.offset_base = modulated, offset_base
        self.max_residue_magnitude = max_residue_magnitude
        self.register_buffer("taps", taps, persistent=False)

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *tap_shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        per_offset = 3 if modulated else 2
        self.conv_offset = (
            conv_offset
            if conv_offset is not None
            else nn.Conv2d(cond_channels, per_offset * offset_groups * num_offsets, 3, 1, 1)
        )

        self.last_offset: Tensor | None = None
        self.last_mask: Tensor | None = None
        self.offset_history: list[Tensor] | None = None  # a list while recording (see record_offsets)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.in_channels * self.num_offsets)
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        last = [m for m in self.conv_offset.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        if self.offset_init == "grid":
            if last.bias is None:
                raise ValueError("offset_init='grid' needs a bias in the offset predictor's last layer")
            grid = nearest_grid_taps(self.num_offsets, self.dilation)
            if self.max_residue_magnitude is not None:
                grid = torch.atanh(grid / self.max_residue_magnitude)
            with torch.no_grad():
                last.bias[: 2 * self.offset_groups * self.num_offsets] = grid.repeat(
                    self.offset_groups, 1
                ).flatten()

    def predict_offsets(self, cond: Tensor, flow: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Offsets ``(B, 2*G*N, H, W)`` and masks ``(B, G*N, H, W)`` (or None) from ``cond``.

        ``flow`` ``(B, 2*F, H, W)``, ``F`` flows in ``(x, y)`` order, if given, is added to the
        offsets (flow-guided deformable alignment, BasicVSR++ Eq. 5): flow ``f`` to the ``N``
        offsets of each of the ``G/F`` consecutive groups ``f*G/F ... (f+1)*G/F - 1`` (BasicVSR++
        aligns two frames at once, the first half of the groups with one flow, the second half
        with the other).
        """
        out = self.conv_offset(cond)
        gn = self.offset_groups * self.num_offsets
        offset, mask = out[:, : 2 * gn], (torch.sigmoid(out[:, 2 * gn :]) if self.modulated else None)
        if self.max_residue_magnitude is not None:
            offset = self.max_residue_magnitude * torch.tanh(offset)
        if flow is not None:
            num_flows = flow.shape[1] // 2
            if flow.shape[1] % 2 or self.offset_groups % num_flows:
                raise ValueError(
                    f"flow has {flow.shape[1]} channels: need 2*F with F dividing "
                    f"offset_groups={self.offset_groups}"
                )
            b, _, h, w = flow.shape
            yx = flow.view(b, num_flows, 2, h, w).flip(2)
            reps = gn // num_flows
            offset = offset + yx.unsqueeze(2).expand(b, num_flows, reps, 2, h, w).reshape(b, 2 * gn, h, w)
        return offset, mask

    def align(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        """Warp ``x`` ``(B, C, H, W)`` by given offsets and fuse: ``(B, out, H, W)``."""
        return fuse_taps(deform_sample(x, offset, self.taps, 1, mask), self.weight, self.bias)

    def forward(self, x: Tensor, cond: Tensor, flow: Tensor | None = None) -> Tensor:
        """``x`` ``(B, C, H, W)`` aligned using offsets predicted from ``cond`` ``(B, Cc, H, W)``."""
        offset, mask = self.predict_offsets(cond, flow)
        self.last_offset, self.last_mask = offset, mask
        if self.offset_history is not None:
            self.offset_history.append(offset)
        return self.align(x, offset, mask)

    @property
    def offset_diversity(self) -> float | None:
        """Mean pixelwise standard deviation of the N sampling positions of the last call
        (:func:`offset_diversity`), or None before the first call."""
        if self.last_offset is None:
            return None
        return float(offset_diversity(self.last_offset.detach(), self.taps).mean())

    @property
    def offset_abs_mean(self) -> float | None:
        """Mean absolute offset of the last call (BasicSR warns above 50: offset overflow)."""
        return None if self.last_offset is None else float(self.last_offset.detach().abs().mean())

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, G={self.offset_groups}, N={self.num_offsets}, "
            f"offset_base={self.offset_base!r}, offset_init={self.offset_init!r}, "
            f"modulated={self.modulated}, "
            f"max_residue_magnitude={self.max_residue_magnitude}"
        )


def sampling_positions(offset: Tensor, taps: Tensor) -> Tensor:
    """Where each of the N warps of each group samples, relative to the pixel: ``taps + offset``
    ``(B, G, N, 2, H, W)`` as ``(dy, dx)``, from offsets ``(B, 2*G*N, H, W)`` and taps ``(N, 2)``."""
    b, c, h, w = offset.shape
    n = taps.shape[0]
    if c % (2 * n):
        raise ValueError(f"offset must have 2*G*N channels with N={n}, got {c}")
    return offset.view(b, c // (2 * n), n, 2, h, w) + taps.to(offset).view(1, 1, n, 2, 1, 1)


def offset_diversity(offset: Tensor, taps: Tensor) -> Tensor:
    """Pixelwise standard deviation of the N offsets of each group: ``(B, G, H, W)``.

    The diversity measure of Chan et al. 2021 (Fig. 9): at every pixel, how far the N sampling
    positions ``taps[n] + offset[n]`` of an offset group spread around their mean,
    ``sqrt(mean_n |p_n - mean(p)|^2)`` in pixels. With the kernel grid included (``taps``), a
    DCN and its free-warp decomposition measure the same; N = 1 gives 0.

    Args:
        offset: ``(B, 2*G*N, H, W)``, channel ``g*2N + 2n + (0: dy, 1: dx)``.
        taps: ``(N, 2)`` base positions ``(dy, dx)`` (zeros for free warps).
    """
    positions = sampling_positions(offset, taps)
    spread = positions - positions.mean(dim=2, keepdim=True)
    return spread.square().sum(dim=3).mean(dim=2).sqrt()


def alignment_modules(net: nn.Module) -> list[tuple[str, DeformableAlignment]]:
    """Every :class:`DeformableAlignment` in ``net`` with its qualified name."""
    return [(name, m) for name, m in net.named_modules() if isinstance(m, DeformableAlignment)]


@contextmanager
def record_offsets(net: nn.Module) -> Iterator[dict[str, list[Tensor]]]:
    """Collect the offsets of every alignment call inside the block, per module, in call order.

    Yields ``{module name: [offset (B_i, 2*G*N, h, w), ...]}``; the tensors stay in the autograd
    graph, so losses on them (offset fidelity) train the offset predictors.
    """
    modules = alignment_modules(net)
    records: dict[str, list[Tensor]] = {}
    for name, m in modules:
        m.offset_history = records.setdefault(name, [])
    try:
        yield records
    finally:
        for _, m in modules:
            m.offset_history = None


def offsets_per_frame(calls: list[Tensor], batch: int, frames: int) -> Tensor:
    """Arrange one module's recorded offsets of a sliding-window forward as ``(B, T, 2K, h, w)``.

    Sliding-window networks align each of the ``T`` frames of a window to its centre, either in
    ``T`` calls of batch ``B`` (one frame each, in time order, as EDVR's PCD) or in one call of
    batch ``B*T`` (``(B, T)`` flattened).
    """
    if len(calls) == frames and all(c.shape[0] == batch for c in calls):
        return torch.stack(calls, dim=1)
    if len(calls) == 1 and calls[0].shape[0] == batch * frames:
        return calls[0].view(batch, frames, *calls[0].shape[1:])
    raise ValueError(
        f"cannot match {len(calls)} alignment calls of batch sizes {[c.shape[0] for c in calls]} "
        f"to {frames} frames of batch {batch}"
    )
