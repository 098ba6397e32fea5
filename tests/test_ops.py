"""Deformable convolution as N warps: against a direct Eq. 1 implementation, torchvision, conv2d."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vsrlab.ops import DeformableAlignment, DeformConv2d, deform_conv2d, flow_warp
from vsrlab.ops.reference import deform_conv2d_gather


def naive_deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask):
    """Eq. 1 one output value at a time, with scalar bilinear interpolation (tiny inputs only)."""
    b, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    groups, k = c // cg, kh * kw
    og = offset.shape[1] // (2 * k)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1

    def bilinear(n, ch, y, xx):
        y0, x0, v = math.floor(y), math.floor(xx), 0.0
        for cy in (y0, y0 + 1):
            for cx in (x0, x0 + 1):
                if 0 <= cy < h and 0 <= cx < w:
                    v += (1 - abs(y - cy)) * (1 - abs(xx - cx)) * float(x[n, ch, cy, cx])
        return v

    out = torch.zeros(b, cout, ho, wo, dtype=x.dtype)
    for n in range(b):
        for o in range(cout):
            g = o // (cout // groups)
            for i in range(ho):
                for j in range(wo):
                    s = float(bias[o]) if bias is not None else 0.0
                    for ci in range(cg):
                        ch = g * cg + ci
                        grp = ch // (c // og)
                        for ki in range(kh):
                            for kj in range(kw):
                                t = ki * kw + kj
                                dy = float(offset[n, grp * 2 * k + 2 * t, i, j])
                                dx = float(offset[n, grp * 2 * k + 2 * t + 1, i, j])
                                m = float(mask[n, grp * k + t, i, j]) if mask is not None else 1.0
                                y = i * stride - padding + ki * dilation + dy
                                xx = j * stride - padding + kj * dilation + dx
                                s += float(weight[o, ci, ki, kj]) * m * bilinear(n, ch, y, xx)
                    out[n, o, i, j] = s
    return out


def make_inputs(
    b=2,
    cin=4,
    cout=6,
    h=7,
    w=9,
    k=3,
    stride=1,
    padding=1,
    dilation=1,
    offset_groups=2,
    groups=1,
    with_mask=True,
    offset_scale=3.0,
    dtype=torch.float64,
):
    ho = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    x = torch.randn(b, cin, h, w, dtype=dtype)
    offset = torch.randn(b, 2 * offset_groups * k * k, ho, wo, dtype=dtype) * offset_scale
    weight = torch.randn(cout, cin // groups, k, k, dtype=dtype)
    bias = torch.randn(cout, dtype=dtype)
    mask = torch.rand(b, offset_groups * k * k, ho, wo, dtype=dtype) if with_mask else None
    return x, offset, weight, bias, mask


CASES = [
    dict(k=3, stride=1, padding=1, dilation=1, offset_groups=1, groups=1, with_mask=False),
    dict(k=3, stride=1, padding=1, dilation=1, offset_groups=2, groups=1, with_mask=True),
    dict(k=3, stride=2, padding=1, dilation=1, offset_groups=2, groups=2, with_mask=True),
    dict(k=3, stride=1, padding=2, dilation=2, offset_groups=4, groups=1, with_mask=True),
    dict(k=1, stride=1, padding=0, dilation=1, offset_groups=1, groups=1, with_mask=True),
    dict(k=5, stride=1, padding=2, dilation=1, offset_groups=2, groups=2, with_mask=False),
]


def test_gather_reference_matches_naive_eq1():
    for case in CASES[:4]:
        x, off, w, b, m = make_inputs(b=1, cin=4, cout=2, h=5, w=6, **case)
        args = (case["stride"], case["padding"], case["dilation"])
        expected = naive_deform_conv2d(x, off, w, b, *args, m)
        torch.testing.assert_close(deform_conv2d_gather(x, off, w, b, *args, m), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_deform_conv2d_matches_eq1_forward_and_gradients(case):
    x, off, w, b, m = make_inputs(**case)
    args = (case["stride"], case["padding"], case["dilation"])
    leaves = [t.requires_grad_() for t in (x, off, w, b, m) if t is not None]
    ours = deform_conv2d(x, off, w, b, *args, mask=m)
    ref = deform_conv2d_gather(x, off, w, b, *args, mask=m)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    grad_out = torch.randn_like(ours)
    g_ours = torch.autograd.grad(ours, leaves, grad_out)
    g_ref = torch.autograd.grad(ref, leaves, grad_out)
    for name, a, r in zip(["input", "offset", "weight", "bias", "mask"], g_ours, g_ref, strict=False):
        torch.testing.assert_close(a, r, rtol=0, atol=1e-9, msg=f"gradient of {name} differs")


def test_deform_conv2d_gradcheck():
    x, off, w, b, m = make_inputs(b=1, cin=2, cout=2, h=4, w=5, offset_groups=2)
    # keep sampling points away from integer coordinates, where bilinear sampling has kinks
    off = torch.floor(off) + 0.3 + 0.4 * torch.rand_like(off)
    inputs = tuple(t.requires_grad_() for t in (x, off, w, b, m))
    assert torch.autograd.gradcheck(lambda *a: deform_conv2d(a[0], a[1], a[2], a[3], 1, 1, 1, a[4]), inputs)


def test_offsets_far_outside_sample_zeros():
    x, off, w, b, m = make_inputs()
    out = deform_conv2d(x, torch.full_like(off, 100.0), w, b, 1, 1, 1, m)
    torch.testing.assert_close(out, b.view(1, -1, 1, 1).expand_as(out))


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 0, 1, 2), (1, 2, 2, 1)])
def test_zero_offsets_equal_conv2d(stride, padding, dilation, groups):
    x, off, w, b, _ = make_inputs(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = deform_conv2d(x, torch.zeros_like(off), w, b, stride, padding, dilation)
    torch.testing.assert_close(out, F.conv2d(x, w, b, stride, padding, dilation, groups), rtol=0, atol=1e-12)


def test_matches_torchvision_if_importable():
    try:
        from torchvision.ops import deform_conv2d as tv_deform_conv2d
    except Exception:  # torchvision absent, or a CUDA build that cannot load on this machine
        pytest.skip("torchvision is not importable")
    for case in CASES:
        x, off, w, b, m = make_inputs(**case)
        args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
        torch.testing.assert_close(
            deform_conv2d(x, off, w, b, mask=m, **args),
            tv_deform_conv2d(x, off, w, b, mask=m, **args),
            rtol=0,
            atol=1e-10,
        )


def test_deform_conv2d_rejects_bad_shapes():
    x, off, w, b, m = make_inputs()
    with pytest.raises(ValueError, match="offset"):
        deform_conv2d(x, off[:, :-2], w, b, 1, 1, 1, None)
    with pytest.raises(ValueError, match="output size"):
        deform_conv2d(x, off, w, b, 1, 0, 1, None)
    with pytest.raises(ValueError, match="mask"):
        deform_conv2d(x, off, w, b, 1, 1, 1, m[:, :-1])


def test_deform_conv2d_module_uses_its_parameters():
    conv = DeformConv2d(4, 6, 3, padding=1).double()
    x, off, _, _, m = make_inputs(offset_groups=2)
    torch.testing.assert_close(conv(x, off, m), deform_conv2d(x, off, conv.weight, conv.bias, 1, 1, 1, m))


def test_flow_warp_integer_flow_shifts():
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    flow = torch.zeros(2, 2, 8, 10, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out(y, x) = in(y - 1, x + 2)
    out = flow_warp(x, flow)
    torch.testing.assert_close(out[:, :, 1:, :-2], x[:, :, :-1, 2:], rtol=0, atol=1e-12)
    assert out[:, :, 0].abs().max() == 0 and out[:, :, :, -2:].abs().max() == 0
    border = flow_warp(x, flow, padding_mode="border")
    torch.testing.assert_close(border[:, :, 0, :-2], x[:, :, 0, 2:], rtol=0, atol=1e-12)


def test_flow_warp_nearest_and_fractional():
    x = torch.arange(12, dtype=torch.float64).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    flow[:, 0] = 0.25
    torch.testing.assert_close(flow_warp(x, flow)[0, 0, :, :3], x[0, 0, :, :3] + 0.25)
    torch.testing.assert_close(flow_warp(x, flow, interpolation="nearest"), x)
    with pytest.raises(ValueError, match="flow"):
        flow_warp(x, flow[:, :1])


@pytest.mark.parametrize("n,dilation", [(9, 1), (25, 1), (9, 2), (1, 1)])
def test_alignment_with_kernel_grid_is_deform_conv2d(n, dilation):
    align = DeformableAlignment(
        8, 6, 5, offset_groups=2, num_offsets=n, modulated=True, dilation=dilation
    ).double()
    torch.nn.init.normal_(align.conv_offset.weight, std=0.5)  # non-trivial offsets and masks
    x, cond = torch.randn(2, 8, 9, 11, dtype=torch.float64), torch.randn(2, 5, 9, 11, dtype=torch.float64)
    out = align(x, cond)
    k = math.isqrt(n)
    expected = deform_conv2d(
        x, align.last_offset, align.weight, align.bias, 1, dilation * (k // 2), dilation, align.last_mask
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert align.weight.shape == (6, 8, k, k)
    assert align.last_offset.shape == (2, 2 * 2 * n, 9, 11) and align.last_mask.shape == (2, 2 * n, 9, 11)
    assert align.last_offset.abs().mean() > 0.1


def test_alignment_initially_equals_plain_convolution():
    """Zero-initialised offsets and sigmoid(0) = 0.5 masks: DCNv2 starts as half a 3x3 convolution."""
    align = DeformableAlignment(4, 4, 4, offset_groups=2, num_offsets=9).double()
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    expected = 0.5 * F.conv2d(x, align.weight, None, padding=1) + align.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(align(x, torch.randn_like(x)), expected, rtol=0, atol=1e-12)


def test_alignment_g1_n1_is_flow_warp_then_1x1_conv():
    align = DeformableAlignment(6, 4, 6, offset_groups=1, num_offsets=1, modulated=False).double()
    x = torch.randn(2, 6, 8, 8, dtype=torch.float64)
    flow = torch.randn(2, 2, 8, 8, dtype=torch.float64) * 2
    out = align.align(x, flow.flip(1))  # offsets are (dy, dx), flows (x, y)
    expected = F.conv2d(flow_warp(x, flow), align.weight.view(4, 6, 1, 1), align.bias)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_alignment_free_offsets_warp_each_group_by_its_own_flows():
    """N free offsets per group: output = 1x1 conv over the N flow-warped copies of each channel group."""
    g, n, c = 2, 3, 4
    align = DeformableAlignment(c, 5, c, offset_groups=g, num_offsets=n, modulated=False).double()
    assert align.offset_base == "zero" and align.weight.shape == (5, c, 1, n)
    x = torch.randn(1, c, 7, 7, dtype=torch.float64)
    flows = torch.randn(g, n, 2, 7, 7, dtype=torch.float64)  # (x, y) flows per group and offset
    offset = flows.flip(2).reshape(1, g * n * 2, 7, 7)
    warped = torch.stack(
        [
            torch.stack([flow_warp(x[:, gi * 2 : (gi + 1) * 2], flows[gi, ni][None]) for ni in range(n)], 2)
            for gi in range(g)
        ],
        1,
    ).reshape(1, c * n, 7, 7)  # channel-major, then offset
    expected = F.conv2d(warped, align.weight.reshape(5, c * n, 1, 1), align.bias)
    torch.testing.assert_close(align.align(x, offset), expected, rtol=0, atol=1e-12)


def test_alignment_flow_prior_and_residue_bound():
    align = DeformableAlignment(4, 4, 4, offset_groups=2, num_offsets=9, max_residue_magnitude=2.0).double()
    torch.nn.init.normal_(align.conv_offset.weight, std=10.0)
    cond = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    flow = torch.randn(1, 2, 5, 5, dtype=torch.float64) * 5
    offset, _ = align.predict_offsets(cond, flow)
    residue = offset - flow.flip(1).repeat(1, 18, 1, 1)
    assert residue.abs().max() <= 2.0 + 1e-9 and residue.abs().max() > 1.5


def test_alignment_rejects_bad_configs():
    with pytest.raises(ValueError, match="odd square"):
        DeformableAlignment(4, 4, 4, offset_groups=1, num_offsets=5, offset_base="kernel")
    with pytest.raises(ValueError, match="divisible"):
        DeformableAlignment(6, 4, 4, offset_groups=4)


def test_alignment_gradients_reach_offset_predictor():
    align = DeformableAlignment(4, 4, 4, offset_groups=2, num_offsets=5)
    x, cond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    align(x, cond).square().sum().backward()
    assert align.conv_offset.weight.grad.abs().sum() > 0
    assert align.weight.grad.abs().sum() > 0


def test_offset_diversity_is_the_spread_of_the_sampling_positions():
    from vsrlab.ops import offset_diversity, sampling_positions

    # G = 2 groups, N = 2 free warps, 1 x 3 pixels: group 0 samples at (0, 0) and (2, 0) -> spread 1 px;
    # group 1 at the same place twice -> 0
    offset = torch.zeros(1, 8, 1, 3)
    offset[0, 2] = 2.0  # group 0, warp 1, dy
    offset[0, 4:8] = 0.5
    taps = torch.zeros(2, 2)
    assert sampling_positions(offset, taps).shape == (1, 2, 2, 2, 1, 3)
    torch.testing.assert_close(
        offset_diversity(offset, taps), torch.tensor([[[[1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0]]]])
    )
    # a 3 x 3 DCN with zero offsets: the kernel grid itself, sqrt(mean |p|^2) = sqrt(12 / 9)
    grid = DeformableAlignment(4, 4, 4, offset_groups=1, num_offsets=9, offset_base="kernel")
    grid(torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5))
    assert grid.offset_diversity == pytest.approx((12 / 9) ** 0.5, abs=1e-6)
    flow_like = DeformableAlignment(4, 4, 4, offset_groups=2, num_offsets=1)
    flow_like(torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5))
    assert flow_like.offset_diversity == 0.0
    with pytest.raises(ValueError, match="2\\*G\\*N channels with N=3"):
        offset_diversity(torch.zeros(1, 8, 2, 2), torch.zeros(3, 2))
