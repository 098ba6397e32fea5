"""Flow-based VSR with N SPyNets, image- or feature-level warping (Chan et al., AAAI 2021, Tables 2 and 4).

SPyNet is slow on CPU (frames are enlarged to 64x64 for it), so behaviour tests use 3-frame windows
of 8x8 frames and a batch of one.
"""

from __future__ import annotations

import re

import pytest
import torch

from vsrlab.archs import IncompatibleCheckpointError, SPyNet, load_pretrained
from vsrlab.archs.flow_vsr_arch import FlowVSR

SPYNET_PARAMS = 1_440_300  # 6 levels x (12,576 + 100,416 + 100,384 + 25,104 + 1,570), as BasicSR's SpyNet
# EDVR-M-like part at num_feat 64, 5 frames, 5 + 10 residual blocks (no BasicSR counterpart):
# conv_first 1,792 + 15 residual blocks x 73,856 + upconv1/2 2 x 147,712 + conv_hr 36,928
# + conv_last 1,731 = 1,443,715, plus fusion 1x1 from 5*N*64 channels: 20,480*N + 64
BODY_PARAMS = 1_792 + 15 * 73_856 + 2 * 147_712 + 36_928 + 1_731


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small(**kwargs) -> FlowVSR:
    kwargs = dict(num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1) | kwargs
    return FlowVSR(**kwargs)


def zero_flow(net: FlowVSR) -> None:
    """Zero the last conv of every SPyNet level: each SPyNet then outputs exactly zero flow."""
    with torch.no_grad():
        for spynet in net.spynets:
            for level in spynet.basic_module:
                level.basic_module[-1].weight.zero_()
                level.basic_module[-1].bias.zero_()


@pytest.mark.parametrize("num_flows, total", [(1, 2_904_559), (2, 4_365_339), (3, 5_826_119)])
def test_canonical_parameter_counts(num_flows, total):
    net = FlowVSR(num_flows=num_flows)
    assert (net.num_frame, net.center_frame_idx) == (5, 2)
    assert count(net) == total == BODY_PARAMS + 20_480 * num_flows + 64 + num_flows * SPYNET_PARAMS
    assert len(net.spynets) == num_flows and all(count(s) == SPYNET_PARAMS for s in net.spynets)
    assert net.fusion.in_channels == 5 * num_flows * 64
    assert count(FlowVSR(num_flows=num_flows, warp_level="image")) == total
    if num_flows == 1:  # the VSR-CNN without alignment: the same body, no SPyNet
        assert count(FlowVSR(warp_level="none")) == total - SPYNET_PARAMS


def test_independent_spynets_give_different_flows_and_equal_weights_equal_flows():
    torch.manual_seed(0)
    net = small(num_flows=2).eval()
    x = torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():
        flows = net.compute_flows(x)
        assert flows.shape == (1, 3, 2, 2, 8, 8)
        assert flows[:, 1].abs().max() == 0  # the centre frame is not warped
        for t in (0, 2):
            assert (flows[0, t, 0] - flows[0, t, 1]).abs().max() > 1e-3
        net.spynets[1].load_state_dict(net.spynets[0].state_dict())
        same = net.compute_flows(x)
    torch.testing.assert_close(same[:, :, 0], same[:, :, 1], rtol=0, atol=0)
    torch.testing.assert_close(same[:, :, 0], flows[:, :, 0], rtol=0, atol=0)


def test_spynet_path_loads_the_same_weights_into_every_spynet(tmp_path):
    ref = SPyNet()
    torch.save({"params": ref.state_dict()}, tmp_path / "spynet.pth")
    net = small(num_flows=3, spynet_path=tmp_path / "spynet.pth")
    for spynet in net.spynets:
        for key, value in ref.state_dict().items():
            assert torch.equal(spynet.state_dict()[key], value)


def test_zero_flow_warping_is_identity_and_both_levels_agree():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 5, 6, 7)
    net = small(num_flows=2)
    warped = net.warp(frames, torch.zeros(2, 3, 2, 2, 6, 7))
    assert warped.shape == (2, 3, 2, 5, 6, 7)
    torch.testing.assert_close(warped, frames.unsqueeze(2).expand_as(warped), rtol=0, atol=1e-6)

    # with zero flows, extract(warp(images)) == warp(extract(images)): image- and feature-level
    # networks with the same weights give the same output
    image = small(warp_level="image").eval()
    zero_flow(image)
    feature = small(warp_level="feature").eval()
    feature.load_state_dict(image.state_dict())
    x = torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():
        out_image, out_feature = image(x), feature(x)
    assert image.last_flows.abs().max() == 0
    assert out_image.shape == (1, 3, 32, 32)
    torch.testing.assert_close(out_image, out_feature, rtol=0, atol=1e-5)


def test_image_level_warps_images_and_feature_level_warps_features():
    torch.manual_seed(0)
    net = small(num_flows=2, warp_level="image")
    x = torch.rand(1, 3, 3, 8, 8)
    flows = torch.randn(1, 3, 2, 2, 8, 8)
    flows[:, 1] = 0
    net.compute_flows = lambda _: flows  # type: ignore[method-assign]  # skip SPyNet: flows are given
    with torch.no_grad():
        aligned_image = net.align(x)
        net.warp_level = "feature"
        aligned_feature = net.align(x)
        expected_image = net.extract(net.warp(x, flows))
        expected_feature = net.warp(net.extract(x), flows)
    assert aligned_image.shape == aligned_feature.shape == (1, 3, 2, 8, 8, 8)
    torch.testing.assert_close(aligned_image, expected_image)
    torch.testing.assert_close(aligned_feature, expected_feature)
    assert (aligned_image[:, 0] - aligned_feature[:, 0]).abs().max() > 1e-4  # warping does not commute
    torch.testing.assert_close(aligned_image[:, 1], aligned_feature[:, 1])  # the centre is not warped


@pytest.mark.parametrize("warp_level, num_flows", [("image", 2), ("feature", 1)])
def test_every_parameter_gets_a_gradient(warp_level, num_flows):
    torch.manual_seed(0)
    net = small(warp_level=warp_level, num_flows=num_flows)
    out = net(torch.rand(1, 3, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32)
    out.square().mean().backward()
    bad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"no finite gradient for {bad}"
    assert all(float(s.basic_module[-1].basic_module[-1].weight.grad.abs().sum()) > 0 for s in net.spynets)


def to_mmagic(state_dict: dict[str, torch.Tensor]) -> dict:
    """MMagic layout: ``generator.`` prefix; SPyNet convs counted without ReLUs, inside ConvModules."""

    def rename(key: str) -> str:
        return re.sub(
            r"(basic_module\.\d+\.basic_module\.)(\d+)\.", lambda m: f"{m[1]}{int(m[2]) // 2}.conv.", key
        )

    return {"meta": {}, "state_dict": {"generator." + rename(k): v for k, v in state_dict.items()}}


def test_mmagic_layout_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    src = small().eval()
    ckpt = to_mmagic(src.state_dict())
    assert "generator.spynets.0.basic_module.5.basic_module.4.conv.bias" in ckpt["state_dict"]
    torch.save(ckpt, tmp_path / "flow_vsr.pth")
    dst = small().eval()
    load_pretrained(dst, tmp_path / "flow_vsr.pth")
    x = torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_without_alignment_the_frames_are_fused_as_they_are():
    torch.manual_seed(0)
    aligned = small(warp_level="image")
    zero_flow(aligned)
    plain = small(warp_level="none")
    plain.load_state_dict({k: v for k, v in aligned.state_dict().items() if not k.startswith("spynets.")})
    x = torch.rand(1, 3, 3, 8, 8)
    with torch.no_grad():  # zero flow: image warping is the identity, so both are the same network
        torch.testing.assert_close(plain(x), aligned(x), rtol=0, atol=1e-6)
    assert plain.last_flows is None and len(plain.spynets) == 0
    with pytest.raises(ValueError, match=r"num_flows must be >= 1 \(1 with warp_level='none'\), got 2"):
        small(warp_level="none", num_flows=2)


def test_checkpoint_with_missing_or_extra_key_is_rejected_by_name():
    sd = dict(small().state_dict())
    missing = dict(sd)
    del missing["fusion.bias"]
    with pytest.raises(IncompatibleCheckpointError, match=r"fusion\.bias"):
        load_pretrained(small(), {"params": missing})
    extra = dict(sd) | {"spynets.1.basic_module.0.basic_module.0.weight": torch.zeros(32, 8, 7, 7)}
    with pytest.raises(IncompatibleCheckpointError, match=r"spynets\.1\.basic_module"):
        load_pretrained(small(), {"params": extra})


def test_rejects_bad_arguments_and_windows():
    with pytest.raises(ValueError, match="warp_level"):
        small(warp_level="pixel")
    with pytest.raises(ValueError, match="num_in_ch must be 3"):
        small(num_in_ch=1)
    with pytest.raises(ValueError, match="expected windows of 3 frames, got 5"):
        small()(torch.rand(1, 5, 3, 8, 8))
