"""TDAN (Tian et al., CVPR 2020) in MMagic's layout, with N offsets for Chan et al. (AAAI 2021) Table 2."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsrlab.archs import IncompatibleCheckpointError, load_pretrained
from vsrlab.archs.tdan_arch import TDAN

# MMagic's TDANNet() has 1,970,819 parameters (layer-by-layer count in tdan_arch's docstring;
# also the count of MMagic's tdan_net.py run with mmcv stubbed); the TDAN paper reports 1.97M
TDAN_PARAMS = 1_970_819
# align_1 and align_2 each: DCN weight 64*64*N + conv_offset (64*2*8*N*9 + 2*8*N)
DCN9 = 64 * 64 * 9 + 64 * 144 * 9 + 144
DCN1 = 64 * 64 + 64 * 16 * 9 + 16
DCN25 = 64 * 64 * 25 + 64 * 400 * 9 + 400


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small(**kwargs) -> TDAN:
    return TDAN(mid_channels=16, num_blocks_before_align=1, num_blocks_after_align=1, **kwargs)


def perturb_offsets(net: TDAN, std: float = 0.3) -> None:
    """The offset convs start at zero; give them weights so that alignment actually moves pixels."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "conv_offset" in name:
                p.normal_(0, std)


def to_mmagic(state_dict: dict[str, torch.Tensor]) -> dict:
    """vsrlab TDAN keys -> an MMagic checkpoint: ConvModule's ``.conv.`` level, ``generator.`` prefix."""
    conv_modules = ("feat_extract.0.", "reconstruct.0.")
    out = {}
    for key, value in state_dict.items():
        for prefix in conv_modules:
            if key.startswith(prefix):
                key = prefix + "conv." + key[len(prefix) :]
        out["generator." + key] = value
    return {"meta": {"mmagic_version": "1.0"}, "state_dict": out}


def test_default_config_matches_mmagic_parameter_count_and_shapes():
    net = TDAN()
    assert count(net) == TDAN_PARAMS
    assert (net.num_frame, net.center_frame_idx) == (5, 2)
    assert count(net.align_1) == count(net.align_2) == DCN9
    assert net.align_1.weight.shape == (64, 64, 3, 3) and net.align_1.bias is None
    assert net.align_1.conv_offset.weight.shape == (144, 64, 3, 3)  # 2*G*9, no mask (DCNv1)
    x = torch.rand(1, 5, 3, 8, 12)
    out = net(x)
    assert out.shape == (1, 3, 32, 48)
    assert net.last_aligned_lr.shape == (1, 5, 3, 8, 12)


@pytest.mark.parametrize("num_offsets, dcn_params, kernel", [(1, DCN1, (1, 1)), (25, DCN25, (5, 5))])
def test_num_offsets_changes_only_the_alignment_dcns(num_offsets, dcn_params, kernel):
    net = TDAN(num_offsets=num_offsets)
    assert count(net) == TDAN_PARAMS - 2 * DCN9 + 2 * dcn_params
    assert net.align_1.weight.shape[2:] == kernel and net.align_2.weight.shape[2:] == kernel
    assert net.feat_aggregate[1].num_offsets == net.feat_aggregate[2].num_offsets == 9
    assert net.align_1.conv_offset.out_channels == 2 * 8 * num_offsets


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(num_offsets=1), dict(num_offsets=25), dict(num_offsets=4), dict(num_frame=3, upscale=2)],
)
def test_variants_run_and_every_parameter_gets_a_gradient(kwargs):
    net = small(**kwargs)
    perturb_offsets(net, 0.05)
    x = torch.rand(2, net.num_frame, 3, 8, 8)
    out = net(x)
    s = net.upscale
    assert out.shape == (2, 3, 8 * s, 8 * s)
    centre = x[:, net.center_frame_idx : net.center_frame_idx + 1].expand_as(x)
    loss = F.mse_loss(out, torch.rand_like(out)) + 0.01 * F.mse_loss(net.last_aligned_lr, centre)
    loss.backward()
    bad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"no finite gradient for {bad}"
    assert all(float(p.grad.abs().sum()) > 0 for n, p in net.named_parameters() if "conv_offset" in n)


def test_aligned_lr_keeps_the_centre_frame_and_each_neighbour_is_aligned_on_its_own():
    torch.manual_seed(1)
    net = small().eval()
    perturb_offsets(net)
    x = torch.rand(2, 5, 3, 8, 8)
    with torch.no_grad():
        net(x)
        aligned = net.last_aligned_lr.clone()
        assert torch.equal(aligned[:, 2], x[:, 2])
        y = x.clone()
        y[1, 0] = torch.rand(3, 8, 8)  # change frame 0 of the second clip only
        net(y)
    changed = (net.last_aligned_lr - aligned).abs().amax(dim=(2, 3, 4))
    assert changed[1, 0] > 1e-3
    assert changed[0].max() == 0 and changed[1, 1:].max() == 0


def test_input_is_shifted_by_img_mean_as_mmagic_normalises_it():
    net = small().eval()
    perturb_offsets(net)
    x = torch.rand(1, 5, 3, 8, 8)
    shifted = small(img_mean=0.0).eval()
    shifted.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(net(x), shifted(x - 0.5) + 0.5)


def test_mmagic_checkpoint_round_trip(tmp_path):
    src = small().eval()
    perturb_offsets(src)
    ckpt = to_mmagic(src.state_dict())
    assert "generator.feat_extract.0.conv.weight" in ckpt["state_dict"]
    assert "generator.reconstruct.3.upsample_conv.weight" in ckpt["state_dict"]
    assert "generator.align_1.conv_offset.weight" in ckpt["state_dict"]
    path = tmp_path / "tdan_mmagic.pth"
    torch.save(ckpt, path)

    dst = small().eval()
    load_pretrained(dst, path)
    x = torch.rand(1, 5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
        assert torch.equal(src.last_aligned_lr, dst.last_aligned_lr)


def test_checkpoint_with_missing_or_extra_key_is_rejected_by_name():
    sd = to_mmagic(small().state_dict())
    missing = {"meta": {}, "state_dict": dict(sd["state_dict"])}
    del missing["state_dict"]["generator.align_2.conv_offset.bias"]
    with pytest.raises(IncompatibleCheckpointError, match=r"align_2\.conv_offset\.bias"):
        load_pretrained(small(), missing)
    extra = {"meta": {}, "state_dict": dict(sd["state_dict"])}
    extra["state_dict"]["generator.align_2.bias"] = torch.zeros(16)  # mmcv DeformConv2d has no bias
    with pytest.raises(IncompatibleCheckpointError, match=r"align_2\.bias"):
        load_pretrained(small(), extra)


def test_rejects_wrong_window_and_upscale():
    with pytest.raises(ValueError, match="expected windows of 5 frames, got 3"):
        small()(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="power of two"):
        small(upscale=3)
