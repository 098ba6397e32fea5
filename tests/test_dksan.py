"""RCAB (BasicSR layout) and DKSAN: parameter counts, the bicubic cascade, ablation switches, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsrlab.archs.blocks import RCAB, ChannelAttention, ResidualGroup
from vsrlab.archs.dksan_arch import DKSAN
from vsrlab.ops import record_offsets
from vsrlab.ops.resize import matlab_imresize_tensor

TINY = dict(
    num_feat=16, num_frame=3, num_extract_block=1, deformable_groups=4, rcab_per_level=(1, 1), upscale=4
)

# the paper's ablation (Table 3) as switches, with the counts of the full-size (x16, T = 7, F = 128) networks
VARIANTS = {
    "backbone": (dict(align=False, channel_attention=False, dksa=False), 26_117_772),  # paper 26.1M
    "+CA": (dict(align=False, dksa=False), 26_281_572),  # paper 26.3M
    "+DKC_Align": (dict(dksa=False), 27_470_560),  # paper 27.0M
    "full": ({}, 30_042_078),  # paper 29.5M
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny(**kwargs) -> DKSAN:
    torch.manual_seed(0)
    return DKSAN(**{**TINY, **kwargs})


def test_rcab_parameter_counts_and_basicsr_keys():
    assert count(RCAB(64)) == 74_436
    assert count(RCAB(128)) == 297_352
    assert count(ChannelAttention(64)) == 580
    shapes = {k: tuple(v.shape) for k, v in RCAB(64).state_dict().items()}
    assert shapes == {
        "rcab.0.weight": (64, 64, 3, 3),
        "rcab.0.bias": (64,),
        "rcab.2.weight": (64, 64, 3, 3),
        "rcab.2.bias": (64,),
        "rcab.3.attention.1.weight": (4, 64, 1, 1),
        "rcab.3.attention.1.bias": (4,),
        "rcab.3.attention.3.weight": (64, 4, 1, 1),
        "rcab.3.attention.3.bias": (64,),
    }
    group = ResidualGroup(32, 2).state_dict()
    assert "residual_group.1.rcab.3.attention.3.bias" in group and "conv.weight" in group
    assert len(group) == 2 * 8 + 2


def test_rcab_loads_a_basicsr_state_dict_and_computes_by_hand():
    torch.manual_seed(1)
    c, r = 32, 2
    sd = {
        "rcab.0.weight": torch.randn(c, c, 3, 3) * 0.1,
        "rcab.0.bias": torch.randn(c) * 0.1,
        "rcab.2.weight": torch.randn(c, c, 3, 3) * 0.1,
        "rcab.2.bias": torch.randn(c) * 0.1,
        "rcab.3.attention.1.weight": torch.randn(r, c, 1, 1),
        "rcab.3.attention.1.bias": torch.randn(r),
        "rcab.3.attention.3.weight": torch.randn(c, r, 1, 1),
        "rcab.3.attention.3.bias": torch.randn(c),
    }
    block = RCAB(c, squeeze_factor=16, res_scale=0.5)
    block.load_state_dict(sd, strict=True)
    x = torch.randn(2, c, 8, 8)
    body = F.relu(F.conv2d(x, sd["rcab.0.weight"], sd["rcab.0.bias"], padding=1))
    body = F.conv2d(body, sd["rcab.2.weight"], sd["rcab.2.bias"], padding=1)
    pooled = body.mean(dim=(2, 3), keepdim=True)
    squeezed = F.relu(F.conv2d(pooled, sd["rcab.3.attention.1.weight"], sd["rcab.3.attention.1.bias"]))
    scale = torch.sigmoid(F.conv2d(squeezed, sd["rcab.3.attention.3.weight"], sd["rcab.3.attention.3.bias"]))
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + 0.5 * body * scale)
        group = ResidualGroup(c, 1, res_scale=0.5)
        group.residual_group[0].load_state_dict(sd)
        torch.testing.assert_close(group(x), x + group.conv(block(x)))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_full_size_parameter_counts(name):
    kwargs, params = VARIANTS[name]
    with torch.device("meta"):
        net = DKSAN(**kwargs)
    assert count(net) == params
    assert (net.upscale, net.levels, net.num_frame, net.center_frame_idx) == (16, 4, 7, 3)
    keys = set(net.state_dict())
    assert ("dkc_align.conv_offset.dk_layers.1.weight" in keys) == kwargs.get("align", True)
    assert ("stages.1.dksa.dk_layers.1.weight" in keys) == kwargs.get("dksa", True)
    assert ("stages.3.body.9.rcab.3.attention.1.weight" in keys) == kwargs.get("channel_attention", True)
    if kwargs.get("dksa", True):  # the light DKSA of level 1: one DK layer
        assert "stages.0.dksa.dk_layers.0.weight" in keys and "stages.0.dksa.dk_layers.1.weight" not in keys
    assert "stages.0.conv_first.weight" not in keys and "stages.1.conv_first.weight" in keys


def test_tiny_forward_levels_and_the_bicubic_cascade():
    net = tiny()
    x = torch.rand(2, 3, 3, 16, 16)
    fused = {}
    net.fusion.register_forward_hook(lambda m, i, o: fused.setdefault("feat", o))
    with torch.no_grad():
        levels = net(x, return_levels=True)
        assert [tuple(o.shape) for o in levels] == [(2, 3, 32, 32), (2, 3, 64, 64)]
        torch.testing.assert_close(net(x), levels[-1])
        # level 1 = the upscale path of the fused features + MATLAB bicubic x2 of the reference frame
        bicubic = matlab_imresize_tensor(x[:, 1], 2)
        torch.testing.assert_close(levels[0], net.stages[0](fused["feat"]) + bicubic)
        torch.testing.assert_close(levels[1], net.stages[1](levels[0]) + matlab_imresize_tensor(levels[0], 2))
        for stage in net.stages:
            stage.conv_last.weight.zero_()
            stage.conv_last.bias.zero_()
        levels = net(x, return_levels=True)
    torch.testing.assert_close(levels[0], bicubic, rtol=0, atol=0)
    torch.testing.assert_close(levels[1], matlab_imresize_tensor(bicubic, 2), rtol=0, atol=0)


def test_neighbours_aligned_in_one_batch_starting_from_zero_offsets():
    net = tiny(num_frame=5)
    x = torch.rand(2, 5, 3, 16, 16)
    with torch.no_grad(), record_offsets(net) as records:
        out = net(x)
    assert out.shape == (2, 3, 64, 64)
    (calls,) = records.values()
    assert len(calls) == 1 and calls[0].shape == (2 * 4, 2 * 4 * 9, 16, 16)  # B*(T-1) neighbours, G=4, N=9
    assert calls[0].abs().max() == 0
    assert net.dkc_align.last_mask.eq(0.5).all()
    # the reference frame is not aligned: its features reach the fusion unchanged
    feats = {}
    net.feature_extraction.register_forward_hook(lambda m, i, o: feats.setdefault("extracted", o))
    net.fusion.register_forward_pre_hook(lambda m, i: feats.setdefault("fused_in", i[0]))
    with torch.no_grad():
        net(x)
    reference = feats["extracted"].view(2, 5, 16, 16, 16)[:, 2]
    torch.testing.assert_close(feats["fused_in"].view(2, 5, 16, 16, 16)[:, 2], reference, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(align=False),
        dict(dksa=False),
        dict(channel_attention=False),
        dict(upscale=2, rcab_per_level=(1,)),
    ],
    ids=["no-align", "no-dksa", "no-channel-attention", "x2"],
)
def test_ablation_switches_run(kwargs):
    net = tiny(**kwargs)
    names = {n for n, _ in net.named_modules()}
    assert ("dkc_align" in names) == kwargs.get("align", True)
    assert ("stages.0.dksa" in names) == kwargs.get("dksa", True)
    with torch.no_grad():
        levels = net(torch.rand(1, 3, 3, 12, 8), return_levels=True)
    scale = kwargs.get("upscale", 4)
    assert len(levels) == net.levels and levels[-1].shape == (1, 3, 12 * scale, 8 * scale)
    assert all(torch.isfinite(o).all() for o in levels)


def test_gradients_reach_the_deformable_kernel_offset_predictors():
    net = tiny()
    x = torch.rand(1, 3, 3, 12, 12)
    predictor = net.dkc_align.conv_offset
    net(x).square().mean().backward()
    # zero-initialised last layer: only it learns at first (as a DCNv2 pack's offset conv)
    assert predictor.dk_layers[-1].weight.grad.abs().sum() > 0
    assert predictor.conv_fuse.weight.grad.abs().sum() == 0
    net.zero_grad()
    with torch.no_grad():
        predictor.dk_layers[-1].weight.normal_(0, 0.01)
    net(x).square().mean().backward()
    grads = {
        "conv_fuse": predictor.conv_fuse.weight,
        "dk0": predictor.dk_layers[0].weight,
        "dk0.kernel_offsets": predictor.dk_layers[0].conv_offset.weight,
        "dk1.kernel_offsets": predictor.dk_layers[1].conv_offset.weight,
        "dcn": net.dkc_align.weight,
        "dksa1.kernel_offsets": net.stages[0].dksa.dk_layers[0].conv_offset.weight,
        "dksa2.kernel_offsets": net.stages[1].dksa.dk_layers[1].conv_offset.weight,
        "rcab": net.stages[0].body[0].rcab[0].weight,
    }
    for name, p in grads.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_argument_errors():
    with pytest.raises(ValueError, match="upscale"):
        DKSAN(**{**TINY, "upscale": 3})
    with pytest.raises(ValueError, match="rcab_per_level"):
        DKSAN(**{**TINY, "upscale": 8})
    with pytest.raises(ValueError, match="center_frame_idx"):
        DKSAN(**{**TINY, "center_frame_idx": 3})
    with pytest.raises(ValueError, match="3 frames"):
        tiny()(torch.rand(1, 5, 3, 8, 8))
