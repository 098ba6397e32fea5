"""Deformable convolution as N spatial warps followed by one convolution.

Chan et al., "Understanding Deformable Alignment in Video Super-Resolution" (AAAI 2021), Eq. 3:
a k x k deformable convolution

    y(p) = sum_k w_k * x(p + p_k + dp_k(p)) * m_k(p)                       (Eq. 1, DCNv1/v2)

equals K = k*k backward warps of ``x``, the k-th by the flow field ``p_k + dp_k``, followed by
one convolution whose kernel covers the K warped copies (a 1x1 convolution over K*C channels).
vsrlab computes it exactly that way, with ``grid_sample`` doing the warps, so the same code
serves flow-based alignment (one warp), DCN (k*k warps on the kernel grid) and any G x N
alignment in between (:class:`vsrlab.ops.DeformableAlignment`).

Layouts follow ``torchvision.ops.deform_conv2d``: offset channel ``g*2K + 2k + (0: dy, 1: dx)``,
mask channel ``g*K + k``, for offset group ``g`` and kernel tap ``k`` (row-major over the kernel).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.ops.warp import grid_sample_exact, pixel_to_grid, position_dtype

IntPair = int | tuple[int, int]


def _pair(v: IntPair, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return (int(v[0]), int(v[1]))


def kernel_taps(
    kernel_size: IntPair,
    dilation: IntPair = 1,
    padding: IntPair = 0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Positions ``p_k`` of the taps of a kernel relative to the output pixel's input position.

    Returns:
        ``(K, 2)`` tensor of ``(dy, dx)``, row-major over the kernel.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    dh, dw = _pair(dilation, "dilation")
    ph, pw = _pair(padding, "padding")
    ky, kx = torch.meshgrid(torch.arange(kh, device=device), torch.arange(kw, device=device), indexing="ij")
    return torch.stack((ky.flatten() * dh - ph, kx.flatten() * dw - pw), dim=1).to(dtype)


def deform_sample(
    input: Tensor,
    offset: Tensor,
    taps: Tensor,
    stride: IntPair = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """The N warps of a deformable convolution: sample ``input`` at ``tap + offset`` per pixel.

    Output pixel ``(i, j)``, offset group ``g`` and tap ``n`` read channel group ``g`` of
    ``input`` at ``(i*stride + taps[n, 0] + dy, j*stride + taps[n, 1] + dx)`` with bilinear
    interpolation, zero outside the image, then multiply by ``mask`` when given. The positions are
    float32 under autocast (:mod:`vsrlab.ops.warp`); the samples have ``input``'s dtype.

    Args:
        input: ``(B, C, H, W)``; ``C`` divisible by the number of offset groups ``G``.
        offset: ``(B, 2*G*N, Ho, Wo)``, channel ``g*2N + 2n + (0: dy, 1: dx)``.
        taps: ``(N, 2)`` base positions ``(dy, dx)`` (kernel grid, or zeros for free warps).
        stride: output stride.
        mask: optional ``(B, G*N, Ho, Wo)`` modulation (DCNv2), channel ``g*N + n``.

    Returns:
        ``(B, C, N, Ho, Wo)`` warped copies of ``input`` (channel-major, then tap).
    """
    b, c, h, w = input.shape
    n = taps.shape[0]
    if offset.dim() != 4 or offset.shape[0] != b or offset.shape[1] % (2 * n) != 0:
        raise ValueError(f"offset must be (B={b}, 2*G*N, Ho, Wo) with N={n}, got {tuple(offset.shape)}")
    g = offset.shape[1] // (2 * n)
    if c % g != 0:
        raise ValueError(
            f"input channels ({c}) must be divisible by the offset groups ({g}) implied by "
            f"offset of {offset.shape[1]} channels and {n} taps"
        )
    ho, wo = offset.shape[-2:]
    sh, sw = _pair(stride, "stride")
    if mask is not None and tuple(mask.shape) != (b, g * n, ho, wo):
        raise ValueError(f"mask must be (B, G*N, Ho, Wo) = {(b, g * n, ho, wo)}, got {tuple(mask.shape)}")

    # positions in float32 (float64 for float64 inputs) whatever the autocast or offset dtype
    dtype = position_dtype(input, offset)
    taps = taps.to(device=offset.device, dtype=dtype)
    off = offset.view(b, g, n, 2, ho, wo).to(dtype)
    ys = torch.arange(ho, device=offset.device, dtype=dtype).view(1, 1, 1, ho, 1) * sh
    xs = torch.arange(wo, device=offset.device, dtype=dtype).view(1, 1, 1, 1, wo) * sw
    py = ys + taps[:, 0].view(1, 1, n, 1, 1) + off[:, :, :, 0]  # (B, G, N, Ho, Wo)
    px = xs + taps[:, 1].view(1, 1, n, 1, 1) + off[:, :, :, 1]
    grid = pixel_to_grid(px, py, h, w).view(b * g, n * ho, wo, 2)
    sampled = grid_sample_exact(input.reshape(b * g, c // g, h, w), grid)
    sampled = sampled.view(b, g, c // g, n, ho, wo)
    if mask is not None:
        sampled = sampled * mask.view(b, g, 1, n, ho, wo)
    return sampled.view(b, c, n, ho, wo)


def fuse_taps(samples: Tensor, weight: Tensor, bias: Tensor | None = None, groups: int = 1) -> Tensor:
    """The convolution after the warps: a 1x1 convolution over the ``C*N`` warped channels.

    Args:
        samples: ``(B, C, N, Ho, Wo)`` from :func:`deform_sample`.
        weight: ``(Cout, C // groups, *taps_shape)`` with ``prod(taps_shape) == N``
            (a ``k x k`` kernel for DCN).
        bias: optional ``(Cout,)``.
        groups: convolution groups over the input channels.

    Returns:
        ``(B, Cout, Ho, Wo)``.
    """
    b, c, n, ho, wo = samples.shape
    cout = weight.shape[0]
    if weight.shape[1] * groups != c or math.prod(weight.shape[2:]) != n:
        raise ValueError(
            f"weight {tuple(weight.shape)} does not match {c} input channels x {n} taps with groups={groups}"
        )
    # as a batched matrix product: on CPU about 1.4x faster than conv2d with a 1x1 kernel, forward + backward
    out = torch.einsum(
        "goc,bgcp->bgop",
        weight.reshape(groups, cout // groups, -1),
        samples.reshape(b, groups, (c // groups) * n, ho * wo),
    ).reshape(b, cout, ho, wo)
    # the bias in the product's dtype (under autocast as conv2d does)
    return out if bias is None else out + bias.to(out.dtype).view(1, cout, 1, 1)


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable convolution (DCNv1, or DCNv2 with ``mask``), pure PyTorch.

    Same signature, layouts and results as ``torchvision.ops.deform_conv2d``; differentiable
    with respect to ``input``, ``offset``, ``mask``, ``weight`` and ``bias``.

    Args:
        input: ``(B, Cin, H, W)``.
        offset: ``(B, 2*G*kh*kw, Ho, Wo)``; ``G`` offset groups divide ``Cin``.
        weight: ``(Cout, Cin // groups, kh, kw)``; ``groups`` is ``Cin // weight.shape[1]``.
        bias: optional ``(Cout,)``.
        stride, padding, dilation: as for ``torch.nn.functional.conv2d``.
        mask: optional ``(B, G*kh*kw, Ho, Wo)``.

    Returns:
        ``(B, Cout, Ho, Wo)`` with ``Ho = (H + 2*ph - dh*(kh-1) - 1) // sh + 1`` (likewise ``Wo``).
    """
    if input.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"input and weight must be 4-D, got {tuple(input.shape)} and {tuple(weight.shape)}")
    cin, h, w = input.shape[1:]
    cout, cin_per_group, kh, kw = weight.shape
    if cin % cin_per_group != 0:
        raise ValueError(f"weight expects a multiple of {cin_per_group} input channels, input has {cin}")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if offset.shape[-2:] != (ho, wo):
        raise ValueError(
            f"offset spatial size {tuple(offset.shape[-2:])} must equal the output size {(ho, wo)}"
        )
    taps = kernel_taps((kh, kw), (dh, dw), (ph, pw), device=offset.device, dtype=offset.dtype)
    samples = deform_sample(input, offset, taps, (sh, sw), mask)
    return fuse_taps(samples, weight, bias, groups=cin // cin_per_group)


class DeformConv2d(nn.Module):
    """Thin module over :func:`deform_conv2d`; offsets (and mask) are inputs of ``forward``.

    Parameters ``weight`` ``(out, in // groups, kh, kw)`` and ``bias`` as in ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        """``input`` ``(B, Cin, H, W)``, ``offset`` ``(B, 2*G*kh*kw, Ho, Wo)`` -> ``(B, Cout, Ho, Wo)``."""
        return deform_conv2d(
            input, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}"
        )
