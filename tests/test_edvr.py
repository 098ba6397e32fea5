"""EDVR: BasicSR parity (parameter counts, state-dict layout), shapes, alignment variants, gradients."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F

from vsrlab.archs.edvr_arch import EDVR, PCDAlignment, TSAFusion
from vsrlab.ops import DeformableAlignment, flow_warp, fuse_taps, offsets_per_frame, record_offsets

SMALL = dict(num_feat=16, num_frame=3, deformable_groups=4, num_extract_block=1, num_reconstruct_block=1)
EDVR_L = dict(num_feat=128, num_reconstruct_block=40)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tensors here are tiny: extra threads only cost time, a lot of it on a loaded machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layout_digest(module: torch.nn.Module) -> str:
    """Digest of the ordered ``name:shape`` list of the state dict."""
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def meta(**kwargs) -> EDVR:
    with torch.device("meta"):
        return EDVR(**kwargs)


# Each row's count, number of state-dict entries and layout digest were produced by BasicSR's own
# basicsr/archs/edvr_arch.py EDVR with the same arguments (BasicSR imported from a source checkout
# with scripts/crosscheck_basicsr.py); the digests equal, entry for entry and in order, BasicSR's.
@pytest.mark.parametrize(
    "kwargs, params, entries, digest",
    [
        ({}, 3_300_131, 144, "ea145ba07333cc73"),  # EDVR-M, published 3.3M
        (EDVR_L, 20_633_827, 264, "b4d8dfb38165273c"),  # EDVR-L, published 20.6M
        (dict(with_tsa=False), 2_996_259, 120, "02a93d725342a5d8"),
        (dict(with_predeblur=True, hr_in=True), 4_042_851, 186, "c7a65222ca20dc43"),
    ],
    ids=["EDVR-M", "EDVR-L", "no-TSA", "predeblur-hr_in"],
)
def test_parameter_counts_and_state_dict_layout_equal_basicsr(kwargs, params, entries, digest):
    net = meta(**kwargs)
    assert count(net) == params
    assert len(net.state_dict()) == entries
    assert layout_digest(net) == digest


def test_basicsr_key_names_spot_check():
    shapes = {k: tuple(v.shape) for k, v in meta().state_dict().items()}
    assert shapes["pcd_align.dcn_pack.l3.weight"] == (64, 64, 3, 3)
    assert shapes["pcd_align.dcn_pack.l3.conv_offset.weight"] == (216, 64, 3, 3)  # 3 * G=8 * 9
    assert shapes["pcd_align.cas_dcnpack.conv_offset.bias"] == (216,)
    assert shapes["pcd_align.offset_conv3.l2.weight"] == (64, 64, 3, 3)
    assert shapes["pcd_align.feat_conv.l1.weight"] == (64, 128, 3, 3)
    assert shapes["fusion.spatial_attn_l2.weight"] == (64, 128, 3, 3)
    assert shapes["feature_extraction.4.conv2.weight"] == (64, 64, 3, 3)
    assert shapes["reconstruction.9.conv1.bias"] == (64,)
    assert shapes["upconv2.weight"] == (256, 64, 3, 3) and shapes["conv_last.weight"] == (3, 64, 3, 3)
    assert "pcd_align.offset_conv3.l3.weight" not in shapes and "pcd_align.feat_conv.l3.weight" not in shapes
    deblur = meta(with_predeblur=True).state_dict()
    assert "predeblur.resblock_l1.4.conv2.weight" in deblur and "conv_1x1.weight" in deblur
    assert "conv_first.weight" not in deblur and "predeblur.stride_conv_hr1.weight" not in deblur


@pytest.mark.parametrize(
    "kwargs, size, out_size",
    [
        ({}, (16, 20), (64, 80)),
        (dict(with_tsa=False), (16, 16), (64, 64)),
        (dict(with_predeblur=True), (16, 16), (64, 64)),
        (dict(with_predeblur=True, hr_in=True), (32, 32), (32, 32)),
        (dict(num_frame=5, center_frame_idx=0), (12, 16), (48, 64)),
    ],
)
def test_output_shapes(kwargs, size, out_size):
    net = EDVR(**{**SMALL, **kwargs})
    assert net.num_frame == kwargs.get("num_frame", 3)
    assert net.center_frame_idx == kwargs.get("center_frame_idx", net.num_frame // 2)
    with torch.no_grad():
        out = net(torch.rand(2, net.num_frame, 3, *size))
    assert out.shape == (2, 3, *out_size)


@pytest.mark.parametrize(
    "align_type, extra, offsets, weight_shape",
    [
        ("dcn", {}, 2 * 4 * 9, (16, 16, 3, 3)),
        ("dcn", dict(num_offsets=25, modulated=False), 2 * 4 * 25, (16, 16, 5, 5)),
        ("decomposed", dict(num_offsets=5), 2 * 4 * 5, (16, 16, 1, 5)),
        ("decomposed", dict(deformable_groups=1, num_offsets=9), 2 * 9, (16, 16, 1, 9)),
        ("flow", {}, 2, (16, 16, 1, 1)),
        ("image", {}, 2, (16, 16, 1, 1)),
    ],
)
def test_alignment_variants_offsets_and_gradients(align_type, extra, offsets, weight_shape):
    net = EDVR(**{**SMALL, **extra}, align_type=align_type)
    packs = [*net.pcd_align.dcn_pack.values(), net.pcd_align.cas_dcnpack]
    assert len(packs) == 4 and all(isinstance(p, DeformableAlignment) for p in packs)
    assert all(tuple(p.weight.shape) == weight_shape for p in packs)
    x = torch.rand(1, 3, 3, 16, 16)
    out = net(x)
    assert out.shape == (1, 3, 64, 64)
    for pack, side in zip(packs, (4, 8, 16, 16), strict=True):
        assert tuple(pack.last_offset.shape) == (3, offsets, side, side)  # all B*T frames
        mask = pack.last_mask
        if pack.modulated and align_type != "image":
            assert tuple(mask.shape) == (3, offsets // 2, side, side)
        else:
            assert mask is None
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
    # the offset convs start at zero, yet the offsets get gradients and can be learned
    assert all(p.conv_offset.weight.grad.abs().sum() > 0 for p in (net.pcd_align.dcn_pack["l1"], packs[-1]))
    # once they are non-zero (after a step), every parameter influences the output
    with torch.no_grad():
        for pack in packs:
            pack.conv_offset.weight.normal_(std=1e-3)
    net.zero_grad()
    net(x).square().mean().backward()
    zero = [name for name, p in net.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, f"zero gradient for {zero}"


def test_flow_is_decomposed_with_one_group_one_offset_and_no_mask():
    flow = EDVR(**SMALL, align_type="flow")
    decomposed = EDVR(
        **{**SMALL, "deformable_groups": 1}, align_type="decomposed", num_offsets=1, modulated=False
    )
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # non-zero offsets
    decomposed.load_state_dict(flow.state_dict(), strict=True)
    x = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(decomposed(x), flow(x))
    assert flow.pcd_align.cas_dcnpack.offset_abs_mean > 0


def test_image_and_flow_alignment_have_the_same_parameters():
    image, flow = meta(align_type="image"), meta(align_type="flow")
    assert layout_digest(image) == layout_digest(flow)
    # weights (F, F, 1, 9) instead of (F, F, 3, 3)
    assert count(meta(align_type="decomposed")) == count(meta())


def test_image_level_alignment_warps_the_frame_by_the_composed_flow():
    torch.manual_seed(0)
    pcd = PCDAlignment(8, 2, align_type="image")
    with torch.no_grad():  # constant flows: L1 (dy, dx) = (0.5, 0), cascade residual (0, 1)
        pcd.dcn_pack["l1"].conv_offset.bias.copy_(torch.tensor([0.5, 0.0]))
        pcd.cas_dcnpack.conv_offset.bias.copy_(torch.tensor([0.0, 1.0]))
        pcd.cas_dcnpack.bias.normal_()
    extractor = torch.nn.Conv2d(3, 8, 3, 1, 1)
    nbr = [torch.rand(2, 8, 16 >> i, 16 >> i) for i in range(3)]
    ref = [torch.rand_like(f) for f in nbr]
    img = torch.rand(2, 3, 16, 16)
    with torch.no_grad(), record_offsets(pcd) as calls:
        out = pcd(nbr, ref, nbr_img=img, extractor=extractor)
        flow = torch.tensor([1.0, 0.5]).view(1, 2, 1, 1).expand(2, 2, 16, 16)  # (x, y)
        torch.testing.assert_close(pcd.last_flow, flow)
        torch.testing.assert_close(pcd.cas_dcnpack.last_offset, flow.flip(1))
        assert [len(c) for c in calls.values()] == [1, 1, 1, 1]  # the image warp is recorded too
        torch.testing.assert_close(calls["cas_dcnpack"][0], flow.flip(1))
        pack = pcd.cas_dcnpack
        feat = extractor(flow_warp(img, flow))
        expected = F.leaky_relu(fuse_taps(feat.unsqueeze(2), pack.weight, pack.bias), 0.1)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="nbr_img"):
        pcd(nbr, ref)


def test_image_alignment_with_hr_input():
    net = EDVR(**SMALL, with_predeblur=True, hr_in=True, align_type="image")
    with torch.no_grad():
        assert net(torch.rand(1, 3, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert net.pcd_align.last_flow.shape == (3, 2, 8, 8)


def test_offsets_are_recorded_once_per_window_for_every_frame():
    net = EDVR(**SMALL)
    with torch.no_grad(), record_offsets(net) as calls:
        net(torch.rand(2, 3, 3, 16, 16))
    assert sorted(calls) == ["pcd_align.cas_dcnpack", *(f"pcd_align.dcn_pack.l{i}" for i in (1, 2, 3))]
    per_frame = offsets_per_frame(calls["pcd_align.cas_dcnpack"], batch=2, frames=3)
    assert per_frame.shape == (2, 3, 2 * 4 * 9, 16, 16)


def test_tsa_fusion_shapes_and_default_centre():
    tsa = TSAFusion(8, 3)
    assert tsa.center_frame_idx == 2  # BasicSR's default, whatever num_frame is
    assert TSAFusion(8, 3, 1)(torch.rand(2, 3, 8, 12, 16)).shape == (2, 8, 12, 16)


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="align_type"):
        EDVR(**SMALL, align_type="pcd")
    with pytest.raises(ValueError, match="with_predeblur"):
        EDVR(**SMALL, hr_in=True)
    with pytest.raises(ValueError, match="odd square"):
        EDVR(**SMALL, num_offsets=4)
    with pytest.raises(ValueError, match="center_frame_idx"):
        EDVR(**SMALL, center_frame_idx=3)
    net = EDVR(**SMALL)
    with pytest.raises(ValueError, match="expected windows of 3 frames, got 5"):
        net(torch.rand(1, 5, 3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 3, 16, 18))


@pytest.mark.parametrize("arch, params", [("edvr", 3_300_131), ("edvr_l", 20_633_827)])
def test_arch_configs_are_edvr_m_and_l(make_cfg, arch, params):
    from vsrlab.archs import build_arch

    cfg = make_cfg("eval", overrides=[f"arch={arch}"])
    with torch.device("meta"):
        net = build_arch(cfg.arch)
    assert isinstance(net, EDVR) and count(net) == params
    assert net.align_type == "dcn" and net.num_frame == 5 and net.center_frame_idx == 2


def test_upscale_builds_one_x2_stage_per_factor_of_two():
    """x4 is BasicSR's layout (official checkpoints load, counts unchanged); x16 (the DKSAN paper's EDVR
    baseline) adds two 64-channel stages: 20,929,251 parameters at EDVR-L's width (paper: 20.6M)."""

    def count(net):
        return sum(p.numel() for p in net.parameters())

    assert count(EDVR(num_feat=128, num_reconstruct_block=40, upscale=16)) == 20_929_251
    assert count(EDVR(num_feat=128, num_reconstruct_block=40)) == 20_633_827
    tiny = {"num_feat": 8, "deformable_groups": 2, "num_extract_block": 1, "num_reconstruct_block": 1}
    x4, x16 = EDVR(**tiny), EDVR(**tiny, upscale=16)
    assert {k for k in x16.state_dict() if k.startswith("upconv")} == {
        f"upconv{i}.{p}" for i in (1, 2, 3, 4) for p in ("weight", "bias")
    }
    assert x4.state_dict()["upconv2.weight"].shape == (256, 8, 3, 3)
    assert x16.state_dict()["upconv3.weight"].shape == (256, 64, 3, 3)
    x = torch.rand(1, 5, 3, 8, 12)
    assert x16(x).shape == (1, 3, 128, 192)
    # the x4 weights fit the first two stages of x16 (the x4 part of the state dict loads)
    report = x16.load_state_dict(x4.state_dict(), strict=False)
    assert sorted(report.missing_keys) == [f"upconv{i}.{p}" for i in (3, 4) for p in ("bias", "weight")]
    for bad in (3, 1, 6):
        with pytest.raises(ValueError, match=f"upscale must be a power of 2.*got {bad}"):
            EDVR(**tiny, upscale=bad)
