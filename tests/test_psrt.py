"""PSRT pieces: attention windows, patch alignment, multi-frame self-attention, PSRT-recurrent."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from vsrlab.archs import PSRTRecurrent, load_pretrained
from vsrlab.archs.contract import is_recurrent
from vsrlab.archs.mfsab import MultiFrameSwin, SwinBlock3D, WindowAttention3D
from vsrlab.ops import (
    flow_warp,
    merge_windows,
    pad_to_windows,
    partition_windows,
    patch_align,
    patch_mean_flow,
    relative_position_index,
    shifted_window_mask,
)

OFFICIAL = dict(embed_dim=120, depths=(6, 6, 6), num_heads=(6, 6, 6), window_size=(3, 8, 8))
SMALL = dict(embed_dim=12, depths=(2,), num_heads=(2,), window_size=(3, 8, 8))


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- attention windows


def test_partition_and_merge_round_trip_and_window_contents():
    x = torch.randn(2, 6, 16, 24, 5)
    windows = partition_windows(x, (3, 8, 8))
    assert windows.shape == (2 * 2 * 2 * 3, 3 * 8 * 8, 5)
    assert torch.equal(merge_windows(windows, (3, 8, 8), (2, 6, 16, 24)), x)
    # window 0 of batch 1 along (D, H, W) index (1, 0, 2) holds frames 3-5, rows 0-7, cols 16-23,
    # tokens in (t, y, x) order
    k = 1 * 12 + 1 * 6 + 0 * 3 + 2
    assert torch.equal(windows[k], x[1, 3:6, 0:8, 16:24].reshape(-1, 5))


def test_pad_to_windows_pads_zeros_at_the_end():
    x = torch.randn(1, 3, 10, 13, 4)
    padded, size = pad_to_windows(x, (3, 8, 8))
    assert size == (3, 10, 13) and padded.shape == (1, 3, 16, 16, 4)
    assert torch.equal(padded[:, :3, :10, :13], x)
    assert padded[:, :, 10:].abs().sum() == 0 and padded[:, :, :, 13:].abs().sum() == 0
    with pytest.raises(ValueError, match="not a multiple of the window"):
        partition_windows(x, (3, 8, 8))


@pytest.mark.parametrize("window", [(3, 8, 8), (2, 3, 4)])
def test_relative_position_index_against_direct_construction(window):
    d, h, w = window
    coords = list(itertools.product(range(d), range(h), range(w)))
    expected = torch.tensor(
        [
            [
                (ti - tj + d - 1) * (2 * h - 1) * (2 * w - 1)
                + (yi - yj + h - 1) * (2 * w - 1)
                + (xi - xj + w - 1)
                for (tj, yj, xj) in coords
            ]
            for (ti, yi, xi) in coords
        ]
    )
    index = relative_position_index(window)
    assert torch.equal(index, expected)
    assert index.max() == (2 * d - 1) * (2 * h - 1) * (2 * w - 1) - 1 and index.min() == 0


def direct_mask(size, window, shift):
    """Region of each padded position per axis, then a pair is masked iff regions differ."""
    padded = [-(-n // k) * k for n, k in zip(size, window, strict=True)]

    def region(pos, n, k, s):
        if s == 0:
            return 0
        return 0 if pos < n - k else (1 if pos < n - s else 2)

    label = torch.zeros(padded)
    for t, y, x in itertools.product(*(range(n) for n in padded)):
        r = [region(p, n, k, s) for p, n, k, s in zip((t, y, x), padded, window, shift, strict=True)]
        label[t, y, x] = r[0] * 9 + r[1] * 3 + r[2]
    masks = []
    for t0, y0, x0 in itertools.product(*(range(0, n, k) for n, k in zip(padded, window, strict=True))):
        tokens = label[t0 : t0 + window[0], y0 : y0 + window[1], x0 : x0 + window[2]].reshape(-1)
        masks.append(torch.where(tokens[:, None] != tokens[None, :], -100.0, 0.0))
    return torch.stack(masks)


@pytest.mark.parametrize(
    "size,window,shift",
    [
        ((3, 16, 16), (3, 8, 8), (3, 4, 4)),
        ((3, 12, 20), (3, 8, 8), (3, 4, 4)),
        ((4, 6, 6), (2, 3, 3), (1, 1, 1)),
    ],
)
def test_shifted_window_mask_against_direct_construction(size, window, shift):
    mask = shifted_window_mask(size, window, shift)
    n_windows = 1
    for n, k in zip(size, window, strict=True):
        n_windows *= -(-n // k)
    n = window[0] * window[1] * window[2]
    assert mask.shape == (n_windows, n, n)
    assert set(mask.unique().tolist()) == {-100.0, 0.0}
    assert torch.equal(mask, direct_mask(size, window, shift))
    # the top-left window never straddles a roll boundary; the bottom-right one does
    assert mask[0].abs().sum() == 0 and mask[-1].abs().sum() > 0


def test_window_attention_equals_explicit_softmax_with_bias_and_mask():
    torch.manual_seed(0)
    attn = WindowAttention3D(dim=8, window_size=(2, 2, 2), num_heads=2)
    x = torch.randn(2 * 3, 8, 8)  # batch 2, 3 windows
    mask = torch.where(torch.rand(3, 8, 8) > 0.7, -100.0, 0.0)
    qkv = attn.qkv(x).view(6, 8, 3, 2, 4).permute(2, 0, 3, 1, 4)
    logits = (qkv[0] * 4**-0.5) @ qkv[1].transpose(-2, -1) + attn.position_bias()
    logits = logits + mask.repeat(2, 1, 1).unsqueeze(1)
    expected = attn.proj((logits.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(6, 8, 8))
    torch.testing.assert_close(attn(x, mask), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        attn(x),
        attn.proj(
            ((logits - mask.repeat(2, 1, 1).unsqueeze(1)).softmax(-1) @ qkv[2])
            .transpose(1, 2)
            .reshape(6, 8, 8)
        ),
        rtol=1e-5,
        atol=1e-6,
    )


def test_swin_block_handles_sizes_that_are_not_window_multiples():
    torch.manual_seed(0)
    block = SwinBlock3D(dim=8, num_heads=2, window_size=(3, 8, 8), shift_size=(3, 4, 4))
    x = torch.randn(1, 3, 10, 13, 8)
    mask = shifted_window_mask((3, 10, 13), (3, 8, 8), (3, 4, 4))
    assert block(x, mask).shape == x.shape


# ---------------------------------------------------------------- patch alignment


def test_patch_align_constant_flows_round_to_whole_pixels():
    x = torch.rand(1, 3, 16, 24)
    assert torch.equal(patch_align(x, torch.full((1, 2, 16, 24), 0.4)), x)
    shifted = patch_align(x, torch.full((1, 2, 16, 24), 0.6))  # out(p) = x(p + 1): one pixel left/up
    assert torch.equal(shifted[..., :-1, :-1], x[..., 1:, 1:])
    assert shifted[..., -1, :].abs().sum() == 0 and shifted[..., :, -1].abs().sum() == 0


def away_from_halves(flow: torch.Tensor, patch: int) -> torch.Tensor:
    for _ in range(100):
        near = ((patch_mean_flow(flow, patch).remainder(1) - 0.5).abs() < 0.1).to(flow.dtype)
        if not near.any():
            return flow
        flow = flow + 0.25 * near
    raise AssertionError("patch means stay near half pixels")


@pytest.mark.parametrize("size", [(32, 40), (21, 30)])
def test_patch_align_moves_each_patch_by_its_rounded_mean(size):
    h, w = size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 4, h, w, generator=g)
    flow = away_from_halves(torch.randn(2, 2, h, w, generator=g, dtype=torch.float64) * 4, 8).float()
    out = patch_align(x, flow, 8)
    padded = F.pad(flow, (0, -w % 8, 0, -h % 8), mode="reflect")
    for b in range(2):
        for y0, x0 in itertools.product(range(0, h, 8), range(0, w, 8)):
            dx, dy = (round(float(v)) for v in padded[b, :, y0 : y0 + 8, x0 : x0 + 8].mean(dim=(1, 2)))
            for y, xx in itertools.product(range(y0, min(y0 + 8, h)), range(x0, min(x0 + 8, w))):
                sy, sx = y + dy, xx + dx
                inside = 0 <= sy < h and 0 <= sx < w
                expected = x[b, :, sy, sx] if inside else torch.zeros(4)
                assert torch.equal(out[b, :, y, xx], expected), (b, y, xx)


def test_patch_align_bilinear_is_flow_warp_by_the_patch_means():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 24, 24, generator=g)
    flow = torch.randn(1, 2, 24, 24, generator=g) * 2
    means = patch_mean_flow(flow, 8)
    torch.testing.assert_close(
        means[..., :8, :8], flow[..., :8, :8].mean(dim=(2, 3), keepdim=True).expand(1, 2, 8, 8)
    )
    torch.testing.assert_close(patch_align(x, flow, 8, "bilinear"), flow_warp(x, means))


def test_patch_align_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same batch and size"):
        patch_align(torch.rand(1, 3, 16, 16), torch.rand(1, 2, 16, 8))


# ---------------------------------------------------------------- PSRT-recurrent


def test_official_configuration_parameter_counts_and_keys():
    with torch.device("meta"):
        net = PSRTRecurrent(**OFFICIAL)
        deeper = PSRTRecurrent(**{**OFFICIAL, "depths": (6, 6, 6, 6), "num_heads": (6, 6, 6, 6)})
    assert count(net) == 13_366_943  # the paper's 13.4M
    assert count(net.spynet) == 1_440_300
    assert [count(m) for m in net.patch_align.values()] == [2_880_004] * 4
    unused = sum(
        count(getattr(net.patch_align["forward_1"], k))
        for k in ("conv_first", "conv_first_feat", "conv_before_upsample")
    )
    assert unused == 141_784
    assert count(deeper) == 16_844_303
    keys = list(net.state_dict())
    assert keys[:2] == ["conv_before_upsample.weight", "conv_before_upsample.bias"]
    for key in (
        "spynet.basic_module.0.basic_module.0.weight",
        "patch_align.backward_1.patch_embed.norm.weight",
        "patch_align.backward_1.layers.0.residual_group.blocks.1.attn.relative_position_bias_table",
        "patch_align.backward_1.layers.0.residual_group.blocks.1.attn.relative_position_index",
        "patch_align.forward_2.layers.2.residual_group.blocks.5.mlp.fc2.bias",
        "patch_align.forward_2.layers.2.conv.weight",
        "patch_align.forward_2.conv_after_body.weight",
        "upconv2.weight",
        "conv_last.bias",
    ):
        assert key in keys, key
    assert net.patch_align["backward_1"].layers[0].residual_group.blocks[
        1
    ].attn.relative_position_bias_table.shape == (1125, 6)
    assert is_recurrent(net)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    net = PSRTRecurrent(**SMALL).eval()
    clip = torch.rand(1, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(clip)
    return net, clip, out


def test_output_shape_and_the_bilinear_skip(small):
    net, clip, out = small
    assert out.shape == (1, 4, 3, 256, 256)
    with torch.no_grad():
        net.conv_last.weight.zero_(), net.conv_last.bias.zero_()
        try:
            skip = net(clip)
        finally:
            torch.manual_seed(0)
            net.conv_last.load_state_dict(PSRTRecurrent(**SMALL).conv_last.state_dict())
    expected = F.interpolate(clip[0], scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(skip[0], expected)


def test_cpu_cache_gives_the_same_output(small):
    net, clip, out = small
    net.cpu_cache_length = 2
    try:
        with torch.no_grad():
            cached = net(clip)
    finally:
        net.cpu_cache_length = 100
    torch.testing.assert_close(cached, out, rtol=0, atol=1e-6)  # per-frame vs batched conv_first


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    net = PSRTRecurrent(**SMALL).train()
    clip = torch.rand(1, 3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    grads = []
    for use_checkpoint in (False, True):
        net.use_checkpoint = use_checkpoint
        net.zero_grad()
        torch.manual_seed(5)  # the same stochastic-depth draws
        net(clip).square().mean().backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert net.use_checkpoint
    assert grads[0].keys() == grads[1].keys()
    assert "patch_align.forward_2.layers.0.residual_group.blocks.0.attn.qkv.weight" in grads[0]
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-7, msg=k)
    # only the fusion modules' three input/output convs never get gradients
    unused = {k for k, p in net.named_parameters() if k not in grads[0]}
    assert {k.split(".")[2] for k in unused} == {"conv_first", "conv_first_feat", "conv_before_upsample"}


def test_mirror_extended_clips_reuse_the_backward_flows(small):
    net, clip, _ = small
    mirror = torch.cat([clip[:, :2], clip[:, :2].flip(1)], dim=1)
    calls = []
    real = net.spynet.forward
    net.spynet.forward = lambda *a: (calls.append(1), real(*a))[1]  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            net(mirror)
    finally:
        del net.spynet.forward
    assert net.is_mirror_extended and len(calls) == 1


def test_official_layout_checkpoints_load_strictly(small, tmp_path):
    net, clip, out = small
    path = tmp_path / "psrt.pth"
    torch.save(
        {
            "params": {k: torch.zeros_like(v) for k, v in net.state_dict().items()},
            "params_ema": net.state_dict(),
        },
        path,
    )
    torch.manual_seed(1)
    other = PSRTRecurrent(**SMALL).eval()
    load_pretrained(other, str(path), strict=True)  # params_ema first, as BasicSR's param_key
    with torch.no_grad():
        assert torch.equal(other(clip), out)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 64x64 for SPyNet, got 32x64"):
        PSRTRecurrent(**SMALL)(torch.rand(1, 2, 3, 32, 64))
    with pytest.raises(ValueError, match="3 frames per step"):
        PSRTRecurrent(**SMALL, num_frames=5)
    with pytest.raises(ValueError, match="takes 3, 64 or 12 channels, got 7"):
        MultiFrameSwin(embed_dim=12, depths=(1,), num_heads=(2,))(torch.rand(1, 3, 7, 8, 8))
