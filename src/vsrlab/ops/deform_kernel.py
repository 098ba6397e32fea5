"""Deformable kernels (DK): convolution whose weights are resampled per pixel from a larger scope.

Gao, Zhu, Lin, Dai, "Deformable Kernels: Adapting Effective Receptive Fields for Object Deformation"
(ICLR 2020). A DK layer keeps a learned kernel *scope* ``W`` of size ``S x S`` (``S >= K``) and, at
every output location ``p``, samples the weight of kernel tap ``k`` at a moved position of the scope
(the paper's DK definition and its Fig. 5: a 3x3 local DK on a 4x4 scope; the local variant predicts
the kernel offsets ``dk`` with a rigid conv on the input, the global variant from globally pooled
features; the paper's equation numbers are not cited here as they could not be checked):

    y(p) = sum_k W(k + (S - K)/2 + dk(p)) * x(p*stride - padding + dilation*k)

``W(.)`` is bilinear interpolation of the scope, zero outside it (a position counts when
``-1 < pos < S``). Combined with a modulated deformable convolution (image offsets ``dp_k`` and
mask ``m_k``, the paper's DK + DCN combination) the image is read at ``p + p_k + dp_k(p)``, times
``m_k(p)``. DKSAN (Xu, Xiong, Wang, Li, ECCV 2020 workshops, Eq. 9-11) uses DK layers to predict
the offsets and masks of its DKC_Align modulated DCN and in its DKSA spatial attention.

Decomposition used here (as :mod:`vsrlab.ops.deform_conv` splits a DCN into warps + a 1x1 conv):

    y(p) = sum_q W_q [ sum_k b_{q,k}(p) x_k(p) ]

with ``x_k`` the ``K^2`` taps (``unfold``, or :func:`~vsrlab.ops.deform_conv.deform_sample` with
image offsets), ``b(p)`` the per-pixel ``S^2 x K^2`` bilinear coefficients of each tap's moved
position in the scope (one matrix per kernel-offset group), and one 1x1 convolution over the
``Cin x S^2`` mixed channels. Layouts follow the official code (hangg7/deformable-kernels): kernel
offset channel ``g*2K^2 + 2k + (0: dh, 1: dw)`` with ``k = row*K + col``; output channel ``c`` uses
kernel-offset group ``c % G`` (interleaved). Image offsets and mask use the torchvision layout of
:func:`~vsrlab.ops.deform_conv.deform_conv2d`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.ops.deform_conv import IntPair, _pair, deform_sample, kernel_taps
from vsrlab.ops.warp import position_dtype


def _scope_coefficients(pos: Tensor, size: int) -> Tensor:
    """1-D bilinear coefficients of positions ``pos`` (any shape ``(..., N, P)``) on ``size`` grid points.

    Returns ``(..., size, N, P)``; zero for grid points outside ``[0, size)``. Uses the floor
    convention (corners ``floor(pos)`` and ``floor(pos) + 1``), so the derivative at an integer
    position is the forward difference, as in ``grid_sample`` and the official CUDA kernels (a
    ``relu(1 - |pos - q|)`` form would have zero gradient there, freezing zero-initialised offsets).
    """
    low = torch.floor(pos).detach()
    frac = (pos - low).unsqueeze(-3)
    low = low.unsqueeze(-3)
    grid = torch.arange(size, device=pos.device, dtype=pos.dtype).view(size, 1, 1)
    return (1 - frac) * (grid == low).to(pos.dtype) + frac * (grid == low + 1).to(pos.dtype)


def _mix_taps(mixing: Tensor, taps: Tensor) -> Tensor:
    """``sum_k b[q, k] x[.., k]``: ``mixing`` ``(B, S^2, K^2, P)``, ``taps`` ``(B, ..., K^2, P)`` ->
    ``(B, ..., S^2, P)``, as one batched matrix product over the ``B*P`` pixels, ``(S^2 x K^2) @
    (K^2 x C)`` each (forward + backward about 5x faster on CPU than ``K^2`` broadcast products)."""
    b, s2, k2, p = mixing.shape
    mid = taps.shape[1:-2]
    channels = taps[0, ..., 0, 0].numel()
    mixed = torch.matmul(mixing.permute(0, 3, 1, 2), taps.reshape(b, channels, k2, p).permute(0, 3, 2, 1))
    return mixed.permute(0, 3, 2, 1).reshape(b, *mid, s2, p)


def kernel_mixing(kernel_offset: Tensor, kernel_size: IntPair, scope_size: IntPair) -> Tensor:
    """Per-pixel mixing matrices ``b`` taking the ``K^2`` taps to the ``S^2`` scope positions.

    Args:
        kernel_offset: ``(B, 2*G*K^2, Ho, Wo)``, channel ``g*2K^2 + 2k + (0: dh, 1: dw)``.
        kernel_size, scope_size: ``K`` and ``S`` (ints or ``(h, w)`` pairs).

    Returns:
        ``(B, G, S_h*S_w, K_h*K_w, Ho*Wo)``: ``b[.., q, k, p]`` = bilinear weight of scope cell ``q``
        for tap ``k`` at ``(k_row + (S_h-K_h)/2 + dh, k_col + (S_w-K_w)/2 + dw)``.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(scope_size, "scope_size")
    b, ch, ho, wo = kernel_offset.shape
    n = kh * kw
    if ch % (2 * n) != 0:
        raise ValueError(f"kernel_offset must have 2*G*{n} channels for kernel {kh}x{kw}, got {ch}")
    g = ch // (2 * n)
    # scope positions in float32 (float64 for float64 offsets) whatever the autocast dtype
    off = kernel_offset.reshape(b, g, n, 2, ho * wo).to(position_dtype(kernel_offset))
    base = kernel_taps((kh, kw), device=off.device, dtype=off.dtype)  # (K^2, 2) row, col
    u = off[:, :, :, 0] + (base[:, 0] + (sh - kh) / 2).view(n, 1)  # (B, G, K^2, P)
    v = off[:, :, :, 1] + (base[:, 1] + (sw - kw) / 2).view(n, 1)
    by = _scope_coefficients(u, sh)  # (B, G, S_h, K^2, P)
    bx = _scope_coefficients(v, sw)  # (B, G, S_w, K^2, P)
    return (by.unsqueeze(3) * bx.unsqueeze(2)).reshape(b, g, sh * sw, n, ho * wo)


def deform_kernel_conv2d(
    input: Tensor,
    kernel_offset: Tensor,
    weight_scope: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    offset: Tensor | None = None,
    mask: Tensor | None = None,
    kernel_size: IntPair = 3,
) -> Tensor:
    """Deformable-kernel convolution (Gao et al. 2020), optionally on deformed image taps.

    Args:
        input: ``(B, Cin, H, W)``.
        kernel_offset: ``(B, 2*G*K^2, Ho, Wo)``; ``G`` kernel-offset groups divide ``Cout``, output
            channel ``c`` uses group ``c % G``.
        weight_scope: ``(Cout, Cin // groups, S_h, S_w)``.
        bias: optional ``(Cout,)``.
        stride, padding, dilation: of the ``K x K`` kernel grid on the image, as for ``conv2d``.
        groups: convolution groups (``groups == Cin == Cout`` is depthwise, the official layers).
        offset: optional image offsets ``(B, 2*Goff*K^2, Ho, Wo)`` (torchvision layout): the taps
            are read at ``p + p_k + dp_k`` (the DK + DCN combination), exactly as
            :func:`~vsrlab.ops.deform_conv.deform_sample`.
        mask: optional ``(B, Goff*K^2, Ho, Wo)`` modulation of the deformed taps (needs ``offset``).
        kernel_size: ``K`` (int or pair); needed because ``2*G*K^2`` channels do not determine ``K``.

    Returns:
        ``(B, Cout, Ho, Wo)``, ``Ho = (H + 2*ph - dh*(K_h-1) - 1) // sh + 1`` (likewise ``Wo``).

    Memory per output pixel (per sample): taps ``Cin*K^2``, mixing ``G*S^2*K^2``, mixed channels
    ``Cin*S^2`` for each kernel-offset group of a dense conv (computed one group at a time, but
    all ``G`` kept for backward), ``Cin*S^2`` in all for depthwise convs.
    """
    if input.dim() != 4 or weight_scope.dim() != 4:
        raise ValueError(
            f"input and weight_scope must be 4-D, got {tuple(input.shape)} and {tuple(weight_scope.shape)}"
        )
    b, cin, h, w = input.shape
    cout, cg, s_h, s_w = weight_scope.shape
    kh, kw = _pair(kernel_size, "kernel_size")
    sth, stw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    if cg * groups != cin or cout % groups != 0:
        raise ValueError(
            f"weight_scope {tuple(weight_scope.shape)} does not fit {cin} input channels with groups={groups}"
        )
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sth + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // stw + 1
    n = kh * kw
    if kernel_offset.dim() != 4 or kernel_offset.shape[0] != b or kernel_offset.shape[1] % (2 * n):
        raise ValueError(
            f"kernel_offset must be (B={b}, 2*G*{n}, {ho}, {wo}), got {tuple(kernel_offset.shape)}"
        )
    if tuple(kernel_offset.shape[-2:]) != (ho, wo):
        raise ValueError(f"kernel_offset spatial size {tuple(kernel_offset.shape[-2:])} != output {(ho, wo)}")
    n_groups = kernel_offset.shape[1] // (2 * n)
    if cout % n_groups != 0:
        raise ValueError(f"kernel-offset groups ({n_groups}) must divide the output channels ({cout})")

    # the K^2 taps x_k(p): (B, Cin, K^2, Ho*Wo)
    if offset is None:
        if mask is not None:
            raise ValueError("mask modulates deformed taps: pass offset as well (zeros for the fixed grid)")
        # strided slices of the zero-padded input (F.unfold, the same values, pays a thread-pool
        # start per call on CPU that dominates small layers)
        padded = F.pad(input, (pw, pw, ph, ph)) if ph or pw else input
        rows = [slice(r * dh, r * dh + (ho - 1) * sth + 1, sth) for r in range(kh)]
        cols = [slice(c * dw, c * dw + (wo - 1) * stw + 1, stw) for c in range(kw)]
        taps = torch.stack([padded[:, :, r, c] for r in rows for c in cols], dim=2).view(b, cin, n, ho * wo)
    else:
        if tuple(offset.shape[-2:]) != (ho, wo):
            raise ValueError(f"offset spatial size {tuple(offset.shape[-2:])} != output {(ho, wo)}")
        grid = kernel_taps((kh, kw), (dh, dw), (ph, pw), device=offset.device, dtype=offset.dtype)
        taps = deform_sample(input, offset, grid, (sth, stw), mask).view(b, cin, n, ho * wo)
    taps = taps.view(b, groups, cg, n, ho * wo)

    mixing = kernel_mixing(kernel_offset, (kh, kw), (s_h, s_w)).to(input.dtype)  # (B, G, S^2, K^2, P)
    scope = weight_scope.reshape(cout, cg, s_h * s_w)
    per_group = cout // groups
    outs, order = [], []
    for g in range(n_groups):
        chans = list(range(g, cout, n_groups))
        conv_groups = [c // per_group for c in chans]
        used = sorted(set(conv_groups))
        counts = {cgi: conv_groups.count(cgi) for cgi in used}
        m = counts[used[0]]
        if all(c == m for c in counts.values()):
            # every conv group used by offset group g feeds the same number of its output channels
            sel = taps if len(used) == groups else taps[:, used]
            mixed = _mix_taps(mixing[:, g], sel)  # (B, n, cg, S^2, P)
            wg = scope[chans].view(len(used), m, cg, s_h * s_w)
            outs.append(torch.einsum("nmcq,bncqp->bnmp", wg, mixed).reshape(b, len(chans), ho * wo))
        else:
            for cgi in used:
                sub = [c for c, gi in zip(chans, conv_groups, strict=True) if gi == cgi]
                mixed = _mix_taps(mixing[:, g], taps[:, cgi])
                outs.append(torch.einsum("ocq,bcqp->bop", scope[sub], mixed))
        order.extend(chans)
    out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
    if n_groups > 1:
        inverse = torch.empty(cout, dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(cout)
        out = out[:, inverse.to(out.device)]
    out = out.view(b, cout, ho, wo)
    return out if bias is None else out + bias.view(1, cout, 1, 1)


class DeformKernelConv2d(nn.Module):
    """Local deformable-kernel convolution (Gao et al. 2020, Fig. 5; DKSAN, Xu et al. 2020, Eq. 10-11).

    Parameters: ``weight`` ``(Cout, Cin // groups, S, S)`` (the scope), ``bias`` ``(Cout,)``, and
    ``conv_offset``, a full ``K x K`` conv (the layer's stride/padding/dilation, with bias)
    ``Cin -> 2*offset_groups*K^2`` predicting the kernel offsets, zero-initialised so that the layer
    starts as the convolution with the scope's centre (``S = K``: the scope itself; ``S = 4, K = 3``:
    its 2x2-box average). ``forward(x, offset=None, mask=None)`` optionally reads the image at
    deformed positions (DCN offsets and mask, torchvision layout). The last kernel offsets
    ``(B, 2*offset_groups*K^2, Ho, Wo)`` are kept, detached, in ``last_kernel_offset``.

    ``weight`` and ``bias`` are initialised as ``nn.Conv2d`` would a ``K x K`` kernel
    (uniform, bound ``1/sqrt(Cin/groups * K^2)``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        scope_size: IntPair = 4,
        stride: IntPair = 1,
        padding: IntPair = 1,
        dilation: IntPair = 1,
        groups: int = 1,
        offset_groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups or out_channels % offset_groups:
            raise ValueError(
                f"groups ({groups}) must divide in_channels ({in_channels}) and out_channels "
                f"({out_channels}); offset_groups ({offset_groups}) must divide out_channels"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.scope_size = _pair(scope_size, "scope_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups, self.offset_groups = groups, offset_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.scope_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.conv_offset = self._make_offset_predictor()
        self.last_kernel_offset: Tensor | None = None
        self.reset_parameters()

    def _make_offset_predictor(self) -> nn.Module:
        return nn.Conv2d(
            self.in_channels,
            2 * self.offset_groups * math.prod(self.kernel_size),
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=True,
        )

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1] * math.prod(self.kernel_size))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def kernel_offset(self, x: Tensor) -> Tensor:
        """Kernel offsets ``(B, 2*offset_groups*K^2, Ho, Wo)`` predicted from ``x``."""
        return self.conv_offset(x)

    def forward(self, x: Tensor, offset: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """``x`` ``(B, Cin, H, W)`` -> ``(B, Cout, Ho, Wo)``; ``offset``/``mask`` as in ``deform_conv2d``."""
        kernel_offset = self.kernel_offset(x)
        self.last_kernel_offset = kernel_offset.detach()
        return deform_kernel_conv2d(
            x,
            kernel_offset,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            offset=offset,
            mask=mask,
            kernel_size=self.kernel_size,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"scope_size={self.scope_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={self.groups}, offset_groups={self.offset_groups}"
        )


class GlobalDeformKernelConv2d(DeformKernelConv2d):
    """Global deformable kernels (Gao et al. 2020): one set of kernel offsets per sample.

    ``conv_offset`` is a 1x1 conv (with bias, zero-initialised) on the globally average-pooled
    input ``(B, Cin, 1, 1) -> (B, 2*offset_groups*K^2, 1, 1)``; the offsets are broadcast over all
    output locations. Otherwise as :class:`DeformKernelConv2d`.
    """

    def _make_offset_predictor(self) -> nn.Module:
        return nn.Conv2d(self.in_channels, 2 * self.offset_groups * math.prod(self.kernel_size), 1)

    def kernel_offset(self, x: Tensor) -> Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        (ph, pw), (dh, dw) = self.padding, self.dilation
        ho = (x.shape[-2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (x.shape[-1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        pooled = self.conv_offset(x.mean(dim=(2, 3), keepdim=True))
        return pooled.expand(-1, -1, ho, wo)
