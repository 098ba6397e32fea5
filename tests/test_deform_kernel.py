"""Deformable-kernel convolution: identities with conv2d / deform_conv2d, a per-pixel reference, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vsrlab.ops import (
    DeformKernelConv2d,
    GlobalDeformKernelConv2d,
    deform_conv2d,
    deform_kernel_conv2d,
)

D = torch.float64


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _bilinear(plane, y, x, valid_open=False):
    """Bilinear value of a 2-D list at (y, x); corners outside contribute zero."""
    h, w = len(plane), len(plane[0])
    if valid_open and not (-1 < y < h and -1 < x < w):
        return 0.0
    y0, x0, v = math.floor(y), math.floor(x), 0.0
    for cy in (y0, y0 + 1):
        for cx in (x0, x0 + 1):
            if 0 <= cy < h and 0 <= cx < w:
                v += (1 - abs(y - cy)) * (1 - abs(x - cx)) * plane[cy][cx]
    return v


def reference(x, kernel_offset, scope, bias, stride, padding, dilation, groups, offset, mask, k):
    """Gao et al. Eq. 6-7 (+ DCN image offsets and mask) one output value at a time, in float64."""
    (sh, sw), (ph, pw), (dh, dw), (kh, kw) = map(_pair, (stride, padding, dilation, k))
    b, cin, h, w = x.shape
    cout, cg, s_h, s_w = scope.shape
    n = kh * kw
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    n_groups = kernel_offset.shape[1] // (2 * n)
    goff = offset.shape[1] // (2 * n) if offset is not None else 1
    xs, ko, ws = x.tolist(), kernel_offset.tolist(), scope.tolist()
    off = offset.tolist() if offset is not None else None
    msk = mask.tolist() if mask is not None else None
    out = torch.zeros(b, cout, ho, wo, dtype=D)
    for bi in range(b):
        for o in range(cout):
            g = o % n_groups
            gamma = o // (cout // groups)
            for i in range(ho):
                for j in range(wo):
                    s = float(bias[o]) if bias is not None else 0.0
                    for ci in range(cg):
                        ch = gamma * cg + ci
                        go = ch // (cin // goff)
                        for t in range(n):
                            r, c = divmod(t, kw)
                            u = r + (s_h - kh) / 2 + ko[bi][g * 2 * n + 2 * t][i][j]
                            v = c + (s_w - kw) / 2 + ko[bi][g * 2 * n + 2 * t + 1][i][j]
                            wt = _bilinear(ws[o][ci], u, v, valid_open=True)
                            y = i * sh - ph + r * dh
                            xx = j * sw - pw + c * dw
                            if off is None:
                                val = xs[bi][ch][y][xx] if 0 <= y < h and 0 <= xx < w else 0.0
                            else:
                                y += off[bi][go * 2 * n + 2 * t][i][j]
                                xx += off[bi][go * 2 * n + 2 * t + 1][i][j]
                                val = _bilinear(xs[bi][ch], y, xx)
                                if msk is not None:
                                    val *= msk[bi][go * n + t][i][j]
                            s += wt * val
                    out[bi, o, i, j] = s
    return out


def make(b, cin, cout, h, w, k, s, groups, n_groups, stride=1, padding=1, dilation=1, goff=0, scale=1.5):
    (kh, kw), (sh, sw), (st_h, st_w), (ph, pw), (dh, dw) = map(_pair, (k, s, stride, padding, dilation))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // st_h + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // st_w + 1
    x = torch.randn(b, cin, h, w, dtype=D)
    ko = torch.randn(b, 2 * n_groups * kh * kw, ho, wo, dtype=D) * scale
    scope = torch.randn(cout, cin // groups, sh, sw, dtype=D)
    bias = torch.randn(cout, dtype=D)
    offset = torch.randn(b, 2 * goff * kh * kw, ho, wo, dtype=D) * 2 if goff else None
    mask = torch.rand(b, goff * kh * kw, ho, wo, dtype=D) if goff else None
    return x, ko, scope, bias, offset, mask


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 4), ((2, 1), (1, 0), (1, 2), 1)],
)
def test_scope_equal_kernel_zero_offsets_is_conv2d(stride, padding, dilation, groups):
    torch.manual_seed(0)
    x, ko, w, bias, _, _ = make(2, 4, 8, 9, 8, 3, 3, groups, 2, stride, padding, dilation)
    y = deform_kernel_conv2d(x, torch.zeros_like(ko), w, bias, stride, padding, dilation, groups)
    ref = F.conv2d(x, w, bias, stride, padding, dilation, groups)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)


def test_scope4_zero_offsets_is_box_averaged_conv():
    torch.manual_seed(1)
    x, ko, w, bias, _, _ = make(2, 4, 6, 7, 7, 3, 4, 1, 3)
    y = deform_kernel_conv2d(x, torch.zeros_like(ko), w, bias, padding=1)
    ref = F.conv2d(x, F.avg_pool2d(w, 2, stride=1), bias, padding=1)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)


def test_half_offsets_select_shifted_subkernels_per_interleaved_group():
    torch.manual_seed(2)
    x, ko, w, bias, _, _ = make(1, 4, 6, 6, 6, 3, 4, 1, 2)
    ko = torch.zeros_like(ko).view(1, 2, 9, 2, 6, 6)
    ko[:, 0] = -0.5  # offset group 0 (output channels 0, 2, 4): W[0:3, 0:3]
    ko[:, 1, :, 0], ko[:, 1, :, 1] = 0.5, -0.5  # group 1 (1, 3, 5): W[1:4, 0:3]
    y = deform_kernel_conv2d(x, ko.view(1, 36, 6, 6), w, bias, padding=1)
    sub = torch.stack([w[c, :, 0:3, 0:3] if c % 2 == 0 else w[c, :, 1:4, 0:3] for c in range(6)])
    torch.testing.assert_close(y, F.conv2d(x, sub, bias, padding=1), rtol=0, atol=1e-12)
    y = deform_kernel_conv2d(x, torch.full_like(ko, 0.5).view(1, 36, 6, 6), w, None, padding=1)
    torch.testing.assert_close(y, F.conv2d(x, w[..., 1:4, 1:4], padding=1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shift", [10.0, -10.0, 3.5, -4.0])
def test_offsets_past_the_scope_give_zero_weight(shift):
    torch.manual_seed(3)
    x, ko, w, bias, _, _ = make(2, 4, 4, 5, 5, 3, 4, 1, 1)
    y = deform_kernel_conv2d(x, torch.full_like(ko, shift), w, bias, padding=1)
    assert torch.equal(y, bias.view(1, 4, 1, 1).expand_as(y))


@pytest.mark.parametrize(
    "cin,cout,groups,n_groups,k,s,stride,padding,dilation,goff",
    [
        (4, 6, 1, 3, 3, 4, 1, 1, 1, 0),  # dense, 3 kernel-offset groups
        (4, 6, 1, 2, 3, 4, 2, 2, 2, 2),  # dense, strided/dilated, image offsets + mask
        (4, 4, 4, 2, 3, 4, 1, 1, 1, 0),  # depthwise
        (4, 4, 4, 4, 3, 5, 1, 1, 1, 4),  # depthwise, image offsets per channel
        (2, 4, 2, 2, 3, 4, 1, 1, 1, 1),  # depthwise with channel multiplier 2
        (4, 6, 2, 2, 3, 4, 1, 1, 1, 0),  # groups 2, 3 outputs per group: uneven group split
        (4, 4, 1, 2, (3, 2), (4, 3), 1, (1, 0), 1, 1),  # non-square kernel and scope
    ],
)
def test_against_per_pixel_reference(cin, cout, groups, n_groups, k, s, stride, padding, dilation, goff):
    torch.manual_seed(4)
    geometry = (stride, padding, dilation)
    x, ko, w, bias, offset, mask = make(2, cin, cout, 6, 5, k, s, groups, n_groups, *geometry, goff)
    y = deform_kernel_conv2d(x, ko, w, bias, stride, padding, dilation, groups, offset, mask, kernel_size=k)
    ref = reference(x, ko, w, bias, stride, padding, dilation, groups, offset, mask, k)
    assert y.shape == ref.shape
    assert ref.abs().max() > 1  # not a trivial (all-zero-weight) case
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cin,cout,groups,n_groups,goff", [(2, 2, 1, 2, 1), (3, 3, 3, 3, 0)])
def test_gradcheck_every_input(cin, cout, groups, n_groups, goff):
    torch.manual_seed(5)
    args = make(1, cin, cout, 3, 3, 3, 4, groups, n_groups, goff=goff, scale=0.8)
    args = [a.requires_grad_() if a is not None else None for a in args]
    x, ko, w, bias, offset, mask = args

    def fn(x, ko, w, bias, *rest):
        offset, mask = rest if rest else (None, None)
        return deform_kernel_conv2d(x, ko, w, bias, 1, 1, 1, groups, offset, mask)

    inputs = (x, ko, w, bias) + ((offset, mask) if goff else ())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_with_image_offsets_and_zero_kernel_offsets_is_deform_conv2d():
    torch.manual_seed(6)
    x, ko, w, bias, offset, mask = make(2, 4, 6, 7, 6, 3, 3, 2, 3, stride=2, padding=1, dilation=2, goff=2)
    y = deform_kernel_conv2d(x, torch.zeros_like(ko), w, bias, 2, 1, 2, 2, offset, mask)
    ref = deform_conv2d(x, offset, w, bias, 2, 1, 2, mask)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)


def test_argument_errors():
    x, ko, w, bias, offset, mask = make(1, 4, 4, 5, 5, 3, 4, 1, 1, goff=1)
    with pytest.raises(ValueError, match="mask"):
        deform_kernel_conv2d(x, ko, w, bias, padding=1, mask=mask)
    with pytest.raises(ValueError, match="kernel_offset"):
        deform_kernel_conv2d(x, ko[:, :17], w, bias, padding=1)
    with pytest.raises(ValueError, match="must divide"):
        deform_kernel_conv2d(x, torch.cat([ko] * 3, 1), w, bias, padding=1)


@pytest.mark.parametrize("scope,groups", [(3, 1), (4, 1), (4, 6)])
def test_module_starts_as_scope_centre_conv_and_offsets_get_gradients(scope, groups):
    torch.manual_seed(7)
    m = DeformKernelConv2d(6, 6, 3, scope_size=scope, groups=groups, offset_groups=2)
    x = torch.randn(2, 6, 8, 7)
    y = m(x)
    centre = m.weight if scope == 3 else F.avg_pool2d(m.weight, 2, stride=1)
    torch.testing.assert_close(y, F.conv2d(x, centre, m.bias, padding=1, groups=groups), rtol=1e-5, atol=1e-5)
    assert m.last_kernel_offset.shape == (2, 36, 8, 7) and not m.last_kernel_offset.any()
    y.square().sum().backward()
    # floor-convention bilinear: zero offsets on integer scope positions still get a gradient
    assert m.conv_offset.weight.grad.abs().sum() > 1e-3
    assert m.weight.grad.abs().sum() > 1e-3


def test_module_with_dcn_offsets_matches_functional():
    torch.manual_seed(8)
    m = DeformKernelConv2d(4, 4, 3, scope_size=4, stride=2, groups=4, offset_groups=2)
    torch.nn.init.normal_(m.conv_offset.weight, std=0.1)
    x = torch.randn(1, 4, 9, 9)
    offset, mask = torch.randn(1, 18, 5, 5), torch.rand(1, 9, 5, 5)
    y = m(x, offset, mask)
    ref = deform_kernel_conv2d(x, m.conv_offset(x), m.weight, m.bias, 2, 1, 1, 4, offset, mask, kernel_size=3)
    torch.testing.assert_close(y, ref)
    assert m.last_kernel_offset.std() > 0


def test_global_variant_spatially_constant_offsets():
    torch.manual_seed(9)
    m = GlobalDeformKernelConv2d(4, 4, 3, scope_size=4, groups=4, offset_groups=2)
    x = torch.randn(2, 4, 6, 5)
    torch.testing.assert_close(m(x), F.conv2d(x, F.avg_pool2d(m.weight, 2, 1), m.bias, padding=1, groups=4))
    torch.nn.init.normal_(m.conv_offset.weight)
    y = m(x)
    ko = m.last_kernel_offset
    assert ko.shape == (2, 36, 6, 5)
    assert torch.equal(ko, ko[..., :1, :1].expand_as(ko)) and ko.std() > 0.1
    assert not torch.equal(ko[0], ko[1])  # per sample
    pooled = m.conv_offset(x.mean((2, 3), keepdim=True))
    torch.testing.assert_close(ko, pooled.expand(-1, -1, 6, 5))
    ref = deform_kernel_conv2d(x, ko, m.weight, m.bias, 1, 1, 1, 4)
    torch.testing.assert_close(y, ref)


def test_parameter_counts():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    # depthwise 64 channels, K = 3, S = 4: scope 64*16 + bias 64 + offset conv 64*18*9 + 18
    assert count(DeformKernelConv2d(64, 64, 3, 4, groups=64)) == 1024 + 64 + 10386 == 11474
    # dense 64 -> 64: scope 64*64*16 = 65536
    assert count(DeformKernelConv2d(64, 64, 3, 4)) == 65536 + 64 + 10386 == 75986
    # global: offsets from a 1x1 conv on the pooled vector, 64*18 + 18
    assert count(GlobalDeformKernelConv2d(64, 64, 3, 4, groups=64)) == 1024 + 64 + 1170 == 2258
    # 4 kernel-offset groups: offset conv 64*72*9 + 72
    assert count(DeformKernelConv2d(64, 64, 3, 4, groups=64, offset_groups=4)) == 1088 + 41544
