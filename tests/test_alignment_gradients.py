"""Every alignment path of every trainable architecture learns from the first step: after one backward
pass, the last layer of each offset (or flow) predictor has a nonzero gradient. The exceptions are
published architectures' own choices, kept in their faithful configurations and pinned here (their
gradient is exactly zero at the first step and flows from the second)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

from vsrlab.archs import (
    DKSAN,
    EDVR,
    TDAN,
    BasicVSR,
    BasicVSRPlusPlus,
    FlowVSR,
    IconVSR,
    PSRTRecurrent,
    SlidingWindowVSR,
    SPyNet,
    VSRTransformer,
)
from vsrlab.ops.alignment import alignment_modules


def output_layer(module: nn.Module) -> nn.Module:
    """The layer that produces a predictor's output: the last registered child holding parameters,
    down to one with a weight of its own (a conv; a deformable-kernel layer)."""
    while "weight" not in module._parameters:
        module = [c for c in module.children() if any(True for _ in c.parameters())][-1]
    return module


def predictors(net: nn.Module) -> dict[str, nn.Module]:
    """``{name: output layer}`` of every offset predictor (DeformableAlignment.conv_offset) and flow
    predictor (SPyNet) of ``net``."""
    found = {f"{name}.conv_offset": output_layer(m.conv_offset) for name, m in alignment_modules(net)}
    found.update({name: output_layer(m) for name, m in net.named_modules() if isinstance(m, SPyNet)})
    return found


def edvr(**kwargs) -> EDVR:
    return EDVR(num_feat=8, num_extract_block=1, num_reconstruct_block=1, deformable_groups=2, **kwargs)


def vsrt(alignment: str) -> VSRTransformer:
    return VSRTransformer(embed_dim=12, depths=[2], num_heads=[2], mid_channels=8, alignment=alignment,
                          deformable_groups=3)  # fmt: skip


SLIDING = dict(num_feat=8, num_extract_block=1, num_reconstruct_block=1)
WINDOW5 = (1, 5, 3, 16, 16)
#: name: (builder, input shape, predictors whose gradient is zero at the first step by design)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], set[str]]] = {
    "sliding_window": (lambda: SlidingWindowVSR(**SLIDING), WINDOW5, set()),
    "sliding_window_flow": (
        lambda: SlidingWindowVSR(**SLIDING, deformable_groups=1, num_offsets=1, modulated=False),
        WINDOW5,
        set(),
    ),
    "sliding_window_n5": (
        lambda: SlidingWindowVSR(**SLIDING, deformable_groups=2, num_offsets=5),
        WINDOW5,
        set(),
    ),
    "edvr_dcn": (lambda: edvr(), WINDOW5, set()),
    "edvr_dcn_plain": (lambda: edvr(modulated=False), WINDOW5, set()),
    "edvr_decomposed": (lambda: edvr(align_type="decomposed", num_offsets=5), WINDOW5, set()),
    "edvr_decomposed_grid": (
        lambda: edvr(align_type="decomposed", num_offsets=5, offset_init="grid", modulated=False),
        WINDOW5,
        set(),
    ),
    "edvr_flow": (lambda: edvr(align_type="flow"), WINDOW5, set()),
    # image warping: the pyramid's coarse offsets reach the output only through the L1 pack's offsets,
    # whose predictor starts at zero (BasicSR's DCNv2Pack init)
    "edvr_image": (
        lambda: edvr(align_type="image"),
        WINDOW5,
        {"pcd_align.dcn_pack.l3.conv_offset", "pcd_align.dcn_pack.l2.conv_offset"},
    ),
    # the aggregate of the offset-generating DCNs reaches the output only through align_1's offsets,
    # whose predictor starts at zero (MMCV's DeformConv2dPack init, MMagic's TDAN)
    **{
        f"tdan_n{n}": (
            lambda n=n: TDAN(
                mid_channels=16, num_blocks_before_align=1, num_blocks_after_align=1, num_offsets=n
            ),
            WINDOW5,
            {"feat_aggregate.1.conv_offset", "feat_aggregate.2.conv_offset"},
        )
        for n in (1, 9, 25)
    },
    "flow_vsr": (
        lambda: FlowVSR(num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1),
        (1, 3, 3, 32, 32),
        set(),
    ),  # fmt: skip
    "flow_vsr_2": (
        lambda: FlowVSR(num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1, num_flows=2),
        (1, 3, 3, 32, 32),
        set(),
    ),  # fmt: skip
    "basicvsr": (lambda: BasicVSR(num_feat=8, num_block=1), (1, 2, 3, 32, 32), set()),
    "iconvsr": (lambda: IconVSR(num_feat=8, num_block=1, keyframe_stride=2), (1, 5, 3, 32, 32), set()),
    "basicvsr_pp": (
        lambda: BasicVSRPlusPlus(mid_channels=8, num_blocks=1, deformable_groups=2),
        (1, 3, 3, 64, 64),
        set(),
    ),
    **{
        f"vsr_transformer_{a}": (lambda a=a: vsrt(a), (1, 5, 3, 32, 32), set())
        for a in ("image", "feature", "fgdc")
    },
    # patch alignment moves whole patches by the rounded mean flow (the paper's nearest sampling):
    # no gradient reaches the flow network, by design
    "vsr_transformer_patch": (lambda: vsrt("patch"), (1, 5, 3, 32, 32), {"spynet"}),
    "psrt_recurrent": (
        lambda: PSRTRecurrent(embed_dim=12, depths=[2], num_heads=[2]),
        (1, 2, 3, 64, 64),
        {"spynet"},
    ),
    "dksan": (
        lambda: DKSAN(
            num_feat=16,
            num_frame=3,
            num_extract_block=1,
            deformable_groups=4,
            rcab_per_level=(1, 1),
            upscale=4,
        ),
        (1, 3, 3, 12, 12),
        set(),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_alignment_predictor_receives_gradient_at_the_first_step(case):
    build, shape, zero_by_design = CASES[case]
    torch.manual_seed(0)
    net = build()
    out = net(torch.rand(shape))
    nn.functional.mse_loss(out, torch.rand_like(out)).backward()
    layers = predictors(net)
    assert layers and zero_by_design <= set(layers), sorted(layers)
    grads = {name: float(layer.weight.grad.abs().sum()) for name, layer in layers.items()}
    assert {n for n, g in grads.items() if g == 0} == zero_by_design, grads


def test_an_unaligned_network_has_no_predictor():
    assert predictors(SlidingWindowVSR(**SLIDING, align_type="none")) == {}
