"""SPyNet: layout and count as BasicSR's, size handling, official-checkpoint layouts."""

from __future__ import annotations

import pytest
import torch

from vsrlab.archs import SPyNet, load_pretrained
from vsrlab.ops import flow_warp


def test_parameter_count_and_keys_match_basicsr():
    net = SPyNet()
    # BasicSR's SpyNet: 6 levels x (8*32 + 32*64 + 64*32 + 32*16 + 16*2) * 49 weights + biases
    assert sum(p.numel() for p in net.parameters()) == 1_440_300
    keys = set(net.state_dict())
    assert {
        "mean",
        "std",
        "basic_module.0.basic_module.0.weight",
        "basic_module.5.basic_module.8.bias",
    } <= keys
    assert len(keys) == 6 * 10 + 2


@pytest.mark.parametrize("size", [(64, 64), (40, 72), (33, 31)])
def test_any_input_size_gives_a_flow_of_that_size(size):
    net = SPyNet()
    a, b = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    flow = net(a, b)
    assert flow.shape == (2, 2, *size)
    assert torch.isfinite(flow).all()


def test_flow_is_rescaled_when_input_is_resized():
    # a net whose last conv outputs a constant (1, 1) residual at every level: the 6-level pyramid
    # accumulates 1 + 2 + 4 + ... = 63 px at the 32-multiple size, rescaled to the input's pixels
    net = SPyNet()
    with torch.no_grad():
        for level in net.basic_module:
            last = level.basic_module[8]
            last.weight.zero_()
            last.bias.fill_(1.0)
    assert torch.allclose(net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)), torch.tensor(63.0))
    flow = net(torch.rand(1, 3, 48, 80), torch.rand(1, 3, 48, 80))  # computed at 64 x 96
    assert torch.allclose(flow[:, 0], torch.tensor(63.0 * 80 / 96))
    assert torch.allclose(flow[:, 1], torch.tensor(63.0 * 48 / 64))


def test_warping_by_its_flow_uses_border_padding_inside_the_pyramid():
    net = SPyNet()
    ref = torch.rand(1, 3, 64, 64)
    flow = net(ref, ref)
    assert flow_warp(ref, flow, padding_mode="border").shape == ref.shape


def test_loads_basicsr_and_mmagic_layouts_and_load_path(tmp_path):
    src = SPyNet()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    expected = src(x, y)

    torch.save({"params": src.state_dict()}, tmp_path / "basicsr.pth")
    assert torch.equal(SPyNet(load_path=tmp_path / "basicsr.pth")(x, y), expected)

    # MMagic: ConvModule-wrapped convs numbered 0..4 under generator.
    mm = {}
    for k, v in src.state_dict().items():
        parts = k.split(".")
        if k.startswith("basic_module"):
            k = ".".join([*parts[:3], str(int(parts[3]) // 2), "conv", parts[4]])
        mm["generator." + k] = v
    torch.save({"meta": {"mmagic_version": "1.2.0"}, "state_dict": mm}, tmp_path / "mmagic.pth")
    net = SPyNet()
    load_pretrained(net, tmp_path / "mmagic.pth")
    assert torch.equal(net(x, y), expected)
