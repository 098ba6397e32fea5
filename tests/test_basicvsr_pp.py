"""BasicVSR++: shapes, parameter counts, gradients, flow-guided offsets, mirror clips, checkpoints."""

from __future__ import annotations

import re

import pytest
import torch

from vsrlab.archs import IncompatibleCheckpointError, load_pretrained
from vsrlab.archs.basicvsr_pp_arch import BasicVSRPlusPlus, SecondOrderDeformableAlignment
from vsrlab.ops import DeformableAlignment

SMALL = dict(mid_channels=8, num_blocks=1, deformable_groups=4)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb_offsets(net: torch.nn.Module, scale: float = 0.05) -> None:
    """Give the zero-initialised last offset convolutions random weights so offsets vary."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "conv_offset.6" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture(scope="module")
def small():
    """A small model, a 3-frame 64x64 clip (SPyNet's minimum; 3 frames use second-order
    propagation) and its output."""
    torch.manual_seed(0)
    net = BasicVSRPlusPlus(**SMALL)
    perturb_offsets(net)
    x = torch.rand(1, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
    return net, x, out


def test_canonical_parameter_counts():
    with torch.device("meta"):  # shapes only: no weight initialisation
        canonical, full_res_input = BasicVSRPlusPlus(), BasicVSRPlusPlus(is_low_res_input=False)
    # equal to BasicSR's BasicVSRPlusPlus(64, 7, 10) (published: 7.3M), SPyNet included
    assert count(canonical) == 7_322_927
    # BasicSR's is_low_res_input=False variant (two stride-2 convs before feature extraction)
    assert count(full_res_input) == 7_396_783


def test_output_shape_and_recurrent_interface(small):
    net, _, out = small
    assert out.shape == (1, 3, 3, 256, 256)
    assert not hasattr(net, "num_frame")  # recurrent: whole clips in, whole clips out


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = BasicVSRPlusPlus(**SMALL)
    perturb_offsets(net)
    net(torch.rand(1, 2, 3, 64, 64)).mean().backward()  # 2 frames keep SPyNet's backward pass short
    bad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"missing or non-finite gradients: {bad}"
    zero = [n for n, p in net.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, f"zero gradients: {zero}"


def test_alignments_are_deformable_alignment_modules_with_recorded_offsets(small):
    net, _, _ = small
    aligns = [m for m in net.modules() if isinstance(m, DeformableAlignment)]
    assert len(aligns) == 4 and all(isinstance(m, SecondOrderDeformableAlignment) for m in aligns)
    for m in aligns:
        assert m.last_offset.shape == (1, 2 * 4 * 9, 64, 64) and m.last_mask.shape == (1, 4 * 9, 64, 64)
    offset_net = [f"conv_offset.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    per_branch = ["weight", "bias", *offset_net]
    assert set(dict(net.deform_align.named_parameters())) == {
        f"{b}.{k}" for b in ("backward_1", "forward_1", "backward_2", "forward_2") for k in per_branch
    }


def test_offsets_are_bounded_residues_around_the_two_flows():
    """Eq. 5-6: offset = flow (first half of the groups flow_1, second half flow_2, as (y, x))
    + max_residue_magnitude * tanh(residue)."""
    torch.manual_seed(0)
    align = SecondOrderDeformableAlignment(16, 8, deformable_groups=4, max_residue_magnitude=10)
    assert tuple(align.weight.shape) == (8, 16, 3, 3) and align.conv_offset[0].in_channels == 3 * 8 + 4
    x, extra = torch.rand(2, 16, 6, 7), torch.rand(2, 24, 6, 7)
    flow_1, flow_2 = torch.randn(2, 2, 6, 7) * 3, torch.randn(2, 2, 6, 7) * 3
    out = align(x, extra, flow_1, flow_2)
    assert out.shape == (2, 8, 6, 7)
    # zero-initialised offset network: the offsets are exactly the flows
    pairs = align.last_offset.view(2, 4, 9, 2, 6, 7)
    assert torch.equal(pairs[:, :2], flow_1.flip(1)[:, None, None].expand(2, 2, 9, 2, 6, 7))
    assert torch.equal(pairs[:, 2:], flow_2.flip(1)[:, None, None].expand(2, 2, 9, 2, 6, 7))
    # a saturated residue moves every offset by exactly max_residue_magnitude
    with torch.no_grad():
        align.conv_offset[6].bias.fill_(100.0)
    align(x, extra, flow_1, flow_2)
    moved = align.last_offset.view(2, 4, 9, 2, 6, 7) - pairs
    torch.testing.assert_close(moved, torch.full_like(moved, 10.0))
    with pytest.raises(ValueError, match="even"):
        SecondOrderDeformableAlignment(16, 8, deformable_groups=3)


def test_mirror_extended_clip_reuses_backward_flows():
    torch.manual_seed(0)
    net = BasicVSRPlusPlus(**SMALL)
    half = torch.rand(1, 2, 3, 64, 64)
    mirror = torch.cat([half, half.flip(1)], dim=1)
    calls = []
    net.spynet.register_forward_hook(lambda *_: calls.append(1))
    assert net.check_if_mirror_extended(mirror)
    with torch.no_grad():
        fwd, bwd = net.compute_flow(mirror)
        assert len(calls) == 1 and torch.equal(fwd, bwd.flip(1))
        net.is_mirror_extended = False
        fwd_full, bwd_full = net.compute_flow(mirror)
    assert len(calls) == 3  # one more call for each direction
    torch.testing.assert_close(fwd, fwd_full, atol=1e-5, rtol=0)
    # the flag is decided anew for every clip
    assert not net.check_if_mirror_extended(torch.cat([half, half], dim=1))
    assert not net.check_if_mirror_extended(torch.rand(1, 3, 3, 64, 64))


def test_cpu_cache_gives_the_same_output(small):
    net, x, out = small
    net.cpu_cache_length = 1  # clips longer than 1 frame: per-frame extraction, features held on the CPU
    try:
        with torch.no_grad():
            cached = net(x)
        assert net.cpu_cache
    finally:
        net.cpu_cache_length = 100
    torch.testing.assert_close(cached, out, atol=1e-5, rtol=0)


def test_full_resolution_input_variant():
    torch.manual_seed(0)
    net = BasicVSRPlusPlus(**SMALL, is_low_res_input=False)
    with torch.no_grad():
        out = net(torch.rand(1, 2, 3, 256, 256))
    assert out.shape == (1, 2, 3, 256, 256)
    with pytest.raises(ValueError, match="downsampled by 4 of at least 64x64.*got 32x40"):
        net(torch.rand(1, 2, 3, 128, 160))
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.rand(1, 2, 3, 258, 256))


def test_small_frames_are_rejected_with_their_size():
    net = BasicVSRPlusPlus(**SMALL)
    with pytest.raises(ValueError, match="at least 64x64 for SPyNet, got 32x48"):
        net(torch.rand(1, 2, 3, 32, 48))
    with pytest.raises(ValueError, match=r"\(B, T, 3, h, w\)"):
        net(torch.rand(1, 3, 64, 64))


def to_mmagic(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BasicSR names -> MMagic's BasicVSRPlusPlusNet names (PixelShufflePack, ConvModule-wrapped SPyNet)."""
    out = {}
    for key, value in sd.items():
        key = re.sub(r"^upconv(\d)\.", r"upsample\1.upsample_conv.", key)
        key = re.sub(
            r"^spynet\.basic_module\.(\d+)\.basic_module\.(\d+)\.",
            lambda m: f"spynet.basic_module.{m[1]}.basic_module.{int(m[2]) // 2}.conv.",
            key,
        )
        out["generator." + key] = value
    return out


def test_mmagic_checkpoint_loads_and_gives_identical_output(small, tmp_path):
    net, x, out = small
    mm = to_mmagic(net.state_dict())
    assert "generator.upsample2.upsample_conv.weight" in mm
    assert "generator.spynet.basic_module.5.basic_module.4.conv.bias" in mm
    path = tmp_path / "basicvsr_plusplus_mmagic.pth"
    torch.save({"meta": {}, "state_dict": mm}, path)
    fresh = BasicVSRPlusPlus(**SMALL)
    load_pretrained(fresh, path)
    with torch.no_grad():
        assert torch.equal(fresh(x), out)


def test_incompatible_checkpoint_names_the_key(small):
    net, _, _ = small
    sd = net.state_dict()
    missing = dict(sd)
    del missing["deform_align.forward_2.conv_offset.6.bias"]
    with pytest.raises(
        IncompatibleCheckpointError, match=r"missing keys: deform_align\.forward_2\.conv_offset\.6\.bias"
    ):
        load_pretrained(BasicVSRPlusPlus(**SMALL), {"params": missing})
    extra = dict(sd, **{"backbone.forward_3.main.0.weight": torch.zeros(1)})
    with pytest.raises(
        IncompatibleCheckpointError, match=r"unexpected keys: backbone\.forward_3\.main\.0\.weight"
    ):
        load_pretrained(BasicVSRPlusPlus(**SMALL), {"params": extra})


def test_spynet_path_loads_spynet_weights(small, tmp_path):
    net, _, _ = small
    path = tmp_path / "spynet.pth"
    torch.save({"params": net.spynet.state_dict()}, path)
    loaded = BasicVSRPlusPlus(**SMALL, spynet_path=path)
    for key, value in net.spynet.state_dict().items():
        assert torch.equal(loaded.spynet.state_dict()[key], value), key
