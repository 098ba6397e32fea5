"""Chan et al. (AAAI 2021), Sec. 3-4 as the study configs run them: a decomposition started on the kernel
grid is the DCN it decomposes, and the plain (non-modulated) decomposed EDVR-M has the parameter
increments that Fig. 16's PSNR gains and gains per million parameters imply."""

from __future__ import annotations

import pytest
import torch

from conftest import compose_config
from vsrlab.archs import EDVR, build_arch
from vsrlab.ops import DeformableAlignment
from vsrlab.ops.alignment import alignment_modules, nearest_grid_taps
from vsrlab.ops.deform_conv import kernel_taps

# Fig. 16 (REDS4 PSNR, EDVR-M without TSA): rows G, columns N = 1, 5, 9, 15, 25
FIG16_N = (1, 5, 9, 15, 25)
FIG16_PSNR = {
    1: (29.992, 30.235, 30.240, 30.218, 30.205),
    8: (30.179, 30.166, 30.231, 30.259, 30.308),
    16: (30.147, 30.207, 30.251, 30.275, 30.295),
    32: (30.120, 30.242, 30.278, 30.331, 30.311),
    64: (30.183, 30.270, 30.273, 30.323, 30.312),
}
# PSNR gain over G = N = 1 per million added parameters
FIG16_GAIN = {
    1: (None, 2.893, 1.476, 0.769, 0.423),
    8: (5.787, 0.709, 0.521, 0.343, 0.241),
    16: (2.239, 0.500, 0.327, 0.212, 0.136),
    32: (0.895, 0.313, 0.196, 0.139, 0.078),
    64: (0.657, 0.181, 0.101, 0.071, 0.041),
}


def test_nearest_grid_taps_are_the_kernel_grid_for_odd_squares():
    assert torch.equal(nearest_grid_taps(9), kernel_taps(3, 1, 1))
    assert torch.equal(nearest_grid_taps(25), kernel_taps(5, 1, 2))
    assert nearest_grid_taps(1).tolist() == [[0.0, 0.0]]
    assert nearest_grid_taps(5).tolist() == [[-1, 0], [0, -1], [0, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize("modulated", [False, True])
def test_a_decomposition_started_on_the_grid_is_the_dcn(modulated):
    torch.manual_seed(0)
    common = dict(offset_groups=2, num_offsets=9, modulated=modulated)
    dcn = DeformableAlignment(8, 8, 6, **common, offset_base="kernel")
    dec = DeformableAlignment(8, 8, 6, **common, offset_base="zero", offset_init="grid")
    zero = DeformableAlignment(8, 8, 6, **common, offset_base="zero")
    with torch.no_grad():
        for other in (dec, zero):
            other.weight.copy_(dcn.weight.reshape(8, 8, 1, 9))
            other.bias.copy_(dcn.bias)
    x, cond = torch.rand(2, 8, 10, 12), torch.rand(2, 6, 10, 12)
    torch.testing.assert_close(dec(x, cond), dcn(x, cond), rtol=0, atol=1e-6)
    # with the same predictor weights too (the grid stays in the bias)
    weight = torch.randn_like(dcn.conv_offset.weight) * 0.05
    with torch.no_grad():
        for layer in (dcn.conv_offset, dec.conv_offset):
            layer.weight.copy_(weight)
            layer.bias[36:] = 0.3  # mask logits (modulated)
    torch.testing.assert_close(dec(x, cond), dcn(x, cond), rtol=0, atol=1e-6)
    assert (zero(x, cond) - dcn(x, cond)).abs().max() > 1e-2  # started at the pixel, it is not


def _edvr_m_params(groups: int, offsets: int) -> int:
    net = EDVR(num_feat=64, with_tsa=False, align_type="decomposed", deformable_groups=groups,
               num_offsets=offsets, modulated=False, offset_init="grid")  # fmt: skip
    return sum(p.numel() for p in net.parameters())


def test_plain_decomposed_edvr_m_has_fig16_parameter_increments():
    base = _edvr_m_params(1, 1)
    worst = 0.0
    for groups, gains in FIG16_GAIN.items():
        for n, gain, psnr in zip(FIG16_N, gains, FIG16_PSNR[groups], strict=True):
            if gain is None:
                continue
            implied = (psnr - FIG16_PSNR[1][0]) / gain * 1e6
            increment = _edvr_m_params(groups, n) - base
            assert increment == pytest.approx(implied, rel=0.01), (groups, n, increment, implied)
            worst = max(worst, abs(increment - implied) / implied)
    assert _edvr_m_params(1, 5) - base == 84_000  # the paper's "84K"
    assert worst < 0.004  # measured: 0.39 % (G = 64, N = 25; the gains are rounded to 3 decimals)


@pytest.mark.parametrize(
    "experiment",
    ["offset_diversity", "offset_diversity_n", "dcn_vs_decomposition", "image_vs_feature_warping",
     "offset_fidelity_on_off", "offset_fidelity_sweep", "tdan_offsets"],
)  # fmt: skip
def test_the_uda_study_configs_use_plain_dcns(tmp_path, experiment):
    """Sections 4.1-4.2 of the paper use plain (non-modulated) DCNs (TDAN's are DCNv1 already); the
    decompositions start on the kernel grid."""
    cfg = compose_config("train", [f"sweep={experiment}"], tmp_path / "run")
    packs = alignment_modules(build_arch(cfg.arch, load_weights=False))
    assert packs and not any(pack.modulated for _, pack in packs)
    free = [pack for _, pack in packs if pack.offset_base == "zero" and pack.num_offsets > 1]
    assert all(pack.offset_init == "grid" for pack in free)
