"""BasicVSR and IconVSR: shapes, parameter counts, propagation, refill, checkpoints."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from vsrlab.archs import IncompatibleCheckpointError, SPyNet, load_pretrained
from vsrlab.archs.basicvsr_arch import BasicVSR
from vsrlab.archs.edvr_arch import EDVR
from vsrlab.archs.iconvsr_arch import EDVRFeatureExtractor, IconVSR


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small_basicvsr() -> BasicVSR:
    return BasicVSR(num_feat=8, num_block=1).eval()


def small_iconvsr(**kwargs) -> IconVSR:
    kwargs = dict(num_feat=8, num_block=1, keyframe_stride=2, temporal_padding=1) | kwargs
    return IconVSR(**kwargs).eval()


def with_fixed_flow(net: BasicVSR | IconVSR) -> BasicVSR | IconVSR:
    """SPyNet replaced by a constant sub-pixel flow: behaviour tests on tiny frames, no SPyNet cost.

    (SPyNet, like BasicSR's, needs sides above 32 pixels and costs ~1 GFLOP per frame pair there.)
    """

    def get_flow(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _, h, w = x.shape
        flow = x.new_full((b, t - 1, 2, h, w), 0.4)
        return flow, -flow

    net.get_flow = get_flow
    return net


def test_canonical_parameter_counts():
    # equal to BasicSR's BasicVSR(64, 30) / IconVSR(64, 30); the paper reports 6.3M and 8.7M
    assert count(BasicVSR(num_feat=64, num_block=30)) == 6_291_311
    assert count(IconVSR(num_feat=64, num_block=30)) == 8_694_991
    # SPyNet is 1,440,300 of them, the EDVR-M feature extractor 2,227,488 (both as in BasicSR)
    assert count(SPyNet()) == 1_440_300
    assert count(EDVRFeatureExtractor(5, 64)) == 2_227_488


@pytest.mark.parametrize("make", [small_basicvsr, small_iconvsr])
def test_recurrent_output_shape_any_size(make):
    net = with_fixed_flow(make())
    assert not hasattr(net, "num_frame")  # recurrent: the LightningModule feeds whole clips
    with torch.no_grad():
        out = net(torch.rand(2, 5, 3, 10, 13))  # IconVSR pads 10x13 to 12x16 and crops back
    assert out.shape == (2, 5, 3, 40, 52)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("make", [small_basicvsr, small_iconvsr])
def test_both_directions_propagate_over_the_whole_clip(make):
    torch.manual_seed(0)
    net = with_fixed_flow(make())
    x = torch.rand(1, 5, 3, 8, 8)
    changed_first, changed_last = x.clone(), x.clone()
    changed_first[:, 0] = torch.rand(3, 8, 8)
    changed_last[:, -1] = torch.rand(3, 8, 8)
    with torch.no_grad():
        out, out_first, out_last = net(x), net(changed_first), net(changed_last)
    assert (out_first[:, -1] - out[:, -1]).abs().max() > 1e-6  # forward branch carries frame 0 to the end
    assert (out_last[:, 0] - out[:, 0]).abs().max() > 1e-6  # backward branch carries the last frame to 0


@pytest.mark.parametrize("make", [small_basicvsr, small_iconvsr])
def test_gradients_reach_every_parameter(make):
    torch.manual_seed(0)
    net = make().train()  # SPyNet included: real flows, 33x33 frames (SPyNet works at 64x64)
    net(torch.rand(1, 3, 3, 33, 33)).square().mean().backward()
    bad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"missing or non-finite gradients: {bad}"


def test_mirrored_clip_runs_spynet_once_with_identical_output(monkeypatch):
    torch.manual_seed(0)
    net = small_basicvsr()
    half = torch.rand(1, 2, 3, 33, 33)
    x = torch.cat([half, half.flip(1)], 1)
    calls = []
    spynet_forward = net.spynet.forward
    monkeypatch.setattr(net.spynet, "forward", lambda ref, supp: calls.append(1) or spynet_forward(ref, supp))
    with torch.no_grad():
        out = net(x)
    assert len(calls) == 1

    def both_directions(clip):
        b, t, c, h, w = clip.shape
        prev, nxt = clip[:, :-1].reshape(-1, c, h, w), clip[:, 1:].reshape(-1, c, h, w)
        shape = (b, t - 1, 2, h, w)
        return spynet_forward(nxt, prev).view(shape), spynet_forward(prev, nxt).view(shape)

    monkeypatch.setattr(net, "get_flow", both_directions)
    with torch.no_grad():
        torch.testing.assert_close(net(x), out, atol=1e-5, rtol=0)


def test_keyframes_and_refill_windows_follow_basicsr(monkeypatch):
    net = IconVSR(num_feat=8, num_block=1, keyframe_stride=5, temporal_padding=2)
    assert net.keyframe_indices(12) == [0, 5, 10, 11]
    assert net.keyframe_indices(11) == [0, 5, 10]
    windows = []

    def record(window: torch.Tensor) -> torch.Tensor:
        windows.append(window[0, :, 0, 0, 0].tolist())
        return window[:, 0, :1]

    monkeypatch.setattr(net.edvr, "forward", record)
    x = torch.arange(7.0).view(1, 7, 1, 1, 1).expand(1, 7, 3, 4, 4)  # frame i holds the value i
    net.refill_features(x)
    # frames 4, 3 before the clip and T-4, T-5 after it, as BasicSR's get_keyframe_feature
    assert windows == [[4, 3, 0, 1, 2], [3, 4, 5, 6, 3], [4, 5, 6, 3, 2]]


def test_iconvsr_rejects_clips_shorter_than_its_refill_window():
    with pytest.raises(ValueError, match="at least 5 frames, got 4"):
        small_iconvsr(temporal_padding=2)(torch.rand(1, 4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, T, 3, h, w\)"):
        small_basicvsr()(torch.rand(1, 3, 8, 8))


def to_mmagic(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (BasicSR) key names as MMagic's BasicVSRNet / IconVSRNet name them."""
    conv_modules = (
        r"(offset_conv\d\.l\d|feat_conv\.l\d|cas_offset_conv\d|feat_fusion|spatial_attn[1-4]"
        r"|spatial_attn_l\d|spatial_attn_add1|feat_l\d_conv\d)"
    )
    rules = [
        (r"^(backward|forward)_trunk\.", r"\1_resblocks."),
        (r"^upconv(\d)\.", r"upsample\1.upsample_conv."),
        (
            r"^spynet\.basic_module\.(\d)\.basic_module\.(\d)\.",
            lambda m: f"spynet.basic_module.{m[1]}.basic_module.{int(m[2]) // 2}.conv.",
        ),
        (r"^edvr\.conv_l(\d)_(\d)\.", r"edvr.feat_l\1_conv\2."),
        (r"^edvr\.pcd_align\.", "edvr.pcd_alignment."),
        (rf"^edvr\.(.*\.)?{conv_modules}\.(weight|bias)$", r"edvr.\1\2.conv.\3"),  # MMCV ConvModule level
    ]
    out = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out["generator." + key] = value
    return out


@pytest.mark.parametrize("make", [small_basicvsr, small_iconvsr])
def test_mmagic_checkpoint_loads_with_identical_output(make, tmp_path):
    torch.manual_seed(0)
    src, dst = make(), make()
    mm = to_mmagic(src.state_dict())
    assert "generator.backward_resblocks.main.2.0.conv1.weight" in mm
    assert "generator.upsample2.upsample_conv.weight" in mm
    assert "generator.spynet.basic_module.5.basic_module.4.conv.bias" in mm
    if isinstance(src, IconVSR):
        assert "generator.edvr.feat_l3_conv2.conv.weight" in mm
        assert "generator.edvr.pcd_alignment.offset_conv1.l3.conv.weight" in mm
        assert "generator.edvr.pcd_alignment.dcn_pack.l1.conv_offset.weight" in mm
    path = tmp_path / "mmagic.pth"
    torch.save({"meta": {}, "state_dict": mm}, path)
    load_pretrained(dst, path)
    x = torch.rand(1, 3, 3, 33, 35)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_checkpoint_with_missing_or_extra_key_is_rejected():
    net = small_basicvsr()
    sd = to_mmagic(net.state_dict())
    missing = {k: v for k, v in sd.items() if k != "generator.fusion.weight"}
    with pytest.raises(IncompatibleCheckpointError, match=r"missing keys: fusion\.weight"):
        load_pretrained(net, {"meta": {}, "state_dict": missing})
    extra = dict(sd, **{"generator.extra_conv.weight": torch.zeros(1)})
    with pytest.raises(IncompatibleCheckpointError, match=r"unexpected keys: extra_conv\.weight"):
        load_pretrained(net, {"meta": {}, "state_dict": extra})


def test_spynet_path_loads_flow_weights(tmp_path):
    spynet = SPyNet()
    torch.save({"params": spynet.state_dict()}, tmp_path / "spynet.pth")
    net = BasicVSR(num_feat=8, num_block=1, spynet_path=tmp_path / "spynet.pth")
    for key, value in spynet.state_dict().items():
        assert torch.equal(net.spynet.state_dict()[key], value), key


def test_edvr_path_loads_the_extractor_part_of_an_edvr_checkpoint(tmp_path, caplog):
    edvr = EDVR(num_feat=8, num_frame=3, deformable_groups=8, num_extract_block=5, num_reconstruct_block=1)
    torch.save({"params": edvr.state_dict()}, tmp_path / "edvr.pth")
    with caplog.at_level(logging.WARNING):
        net = small_iconvsr(temporal_padding=1, edvr_path=tmp_path / "edvr.pth")
    own = net.edvr.state_dict()
    for key, value in own.items():
        assert torch.equal(value, edvr.state_dict()[key]), key
    skipped = sorted(set(edvr.state_dict()) - set(own))
    assert "upconv1.weight" in skipped and "reconstruction.0.conv1.weight" in skipped
    assert net.edvr.skipped_keys == skipped
    assert "upconv1.weight" in caplog.text

    wrong = EDVR(num_feat=8, num_frame=5, deformable_groups=8, num_extract_block=5, num_reconstruct_block=1)
    torch.save({"params": wrong.state_dict()}, tmp_path / "edvr5.pth")
    with pytest.raises(IncompatibleCheckpointError, match="fusion.feat_fusion.weight"):
        small_iconvsr(temporal_padding=1, edvr_path=tmp_path / "edvr5.pth")
