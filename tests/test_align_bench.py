"""data=align_bench: the synthetic clips where the neighbours carry information (pure translation, an
aliasing degradation, test clips stratified by speed) and the oracle row (arch=oracle with the true flow),
scored like bicubic, per motion bin."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_config
from vsrlab.apps.evaluate import evaluate
from vsrlab.archs import SlidingWindowVSR, build_arch

ORACLE = ["data=align_bench", "arch=oracle", "model.flow_source=batch", "extras.print_config=false"]


def test_align_bench_composes_with_the_oracle_following_its_options(tmp_path):
    cfg = compose_config("eval", ORACLE, tmp_path / "run")
    test = instantiate(cfg.data).test_set
    assert len(test) == 7 * 16 and test.lq_size == (48, 48) and test.num_frames == 7
    assert [test.clip_name(i) for i in (0, 16, 111)] == [
        "test_speed0_00000",
        "test_speed0.5_00016",
        "test_speed12_00111",
    ]
    assert test.lr.degradation == "area" and test.motion.camera_rotation == 0 and test.motion.camera_zoom == 0
    net = build_arch(cfg.arch)
    assert (net.degradation, net.noise_sigma, net.occlusions) == ("area", 0.0, False)
    # one override sets the degradation and the corruptions of every split and of the oracle
    overrides = [
        "data.test.degradation=bicubic_noaa",
        "data.test.noise_sigma=10",
        "data.test.occlusions=true",
    ]
    cfg = compose_config("eval", [*ORACLE, *overrides], tmp_path / "run")
    data = instantiate(cfg.data)
    for split in (data.test_set, data.val_set, instantiate(cfg.data.train)):
        assert (split.lr.degradation, split.lr.noise_sigma, split.lr.occlusions) == (
            "bicubic_noaa",
            10.0,
            (1, 3),
        )
    net = build_arch(cfg.arch)
    assert (net.degradation, net.noise_sigma, net.occlusions) == ("bicubic_noaa", 10.0, True)


def test_the_oracle_row_is_scored_like_bicubic_per_speed(tmp_path):
    small = ["data.test.speeds=[0,2]", "data.test.clips_per_speed=1", "data.test.lq_size=[24,24]",
             "+model.evaluation.motion_bins.edges=[0,1,4,inf]"]  # fmt: skip
    oracle = evaluate(compose_config("eval", [*ORACLE, *small], tmp_path / "oracle"))
    bicubic = evaluate(
        compose_config("eval", ["data=align_bench", "arch=bicubic", *small], tmp_path / "bicubic")
    )
    assert oracle["clips"].keys() == {"test_speed0_00000", "test_speed2_00001"}
    for name, clip in oracle["clips"].items():
        assert clip["frames"] == 1  # the centre frame: full windows around it
        assert clip["psnr_bicubic"] == pytest.approx(bicubic["clips"][name]["psnr"], abs=1e-9)
    static, moving = oracle["clips"]["test_speed0_00000"], oracle["clips"]["test_speed2_00001"]
    assert static["psnr"] == pytest.approx(static["psnr_bicubic"], abs=1e-9)  # nothing to add: bicubic
    assert moving["psnr"] > moving["psnr_bicubic"] + 1.0
    bins = oracle["motion_bins"]["clips"]
    assert [b["pixels"] for b in bins["test_speed0_00000"]] == [96 * 96, 0, 0]  # each clip in its speed's bin
    assert [b["pixels"] for b in bins["test_speed2_00001"]] == [0, 96 * 96, 0]
    metrics = json.loads((tmp_path / "oracle" / "metrics.json").read_text())
    assert metrics["arch"] == "vsrlab.archs.Oracle"


# what each row of the benchmark is: (align_type, flow_guided, flow_source, neighbours, alignment
# parameters). Alignment parameters at 32 features: offset_conv1 (64->32, 3x3) 18,464 + offset_conv2
# (32->32) 9,248, then the DeformableAlignment: G = N = 1: conv_offset 32->2 (578) + 1x1 fusion 32->32
# (1,056); G = 4, N = 9: conv_offset 32->72 (20,808) + the 3x3 weight 32x32x9 + bias (9,248).
ROWS = {
    "centre": ("flow", False, "batch", "centre", 0),
    "true_flow": ("flow", False, "batch", "frames", 0),
    "true_flow_image": ("image_flow", False, "batch", "frames", 0),
    "none": ("none", False, None, "frames", 0),
    "learned_flow": ("deformable", False, None, "frames", 27_712 + 578 + 1_056),
    "dcn": ("deformable", False, None, "frames", 27_712 + 20_808 + 9_248),
    "flow_guided_dcn": ("deformable", True, "batch", "frames", 27_712 + 20_808 + 9_248),
}


@pytest.mark.parametrize("row", sorted(ROWS))
def test_every_row_of_the_benchmark_builds_what_it_says(tmp_path, row):
    overrides = ["sweep=alignment_benchmark", f"row/alignment_benchmark={row}"]
    cfg = compose_config("train", overrides, tmp_path / "run")
    model = instantiate(cfg.model, _recursive_=False)
    net = model.net
    align = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("offset_conv", "dcn.")))
    assert (net.align_type, net.flow_guided, model.flow_source, model.neighbours, align) == ROWS[row]
    assert (net.num_frame, cfg.data.test.degradation, cfg.trainer.max_steps) == (5, "area", 2000)
    assert not net.dcn.modulated if net.align_type == "deformable" else True


def test_image_warping_by_an_integer_translation_gives_the_centre_frame_to_every_window_slot():
    # frame t is the centre frame moved by (t - 2) px to the right; the flow from the centre to frame t is
    # (t - 2, 0): image_flow warps every frame back onto the centre one, exactly away from the borders, so
    # the network sees the centre frame five times
    torch.manual_seed(0)
    base = torch.rand(1, 3, 16, 40)
    x = torch.stack([torch.roll(base, t - 2, dims=-1) for t in range(5)], 1)
    flows = torch.zeros(1, 5, 2, 16, 40)
    flows[:, :, 0] = torch.arange(-2.0, 3.0).view(1, 5, 1, 1)
    image = SlidingWindowVSR(num_feat=8, num_frame=5, num_extract_block=1, num_reconstruct_block=1,
                             align_type="image_flow").eval()  # fmt: skip
    plain = SlidingWindowVSR(num_feat=8, num_frame=5, num_extract_block=1, num_reconstruct_block=1,
                             align_type="none").eval()  # fmt: skip
    with torch.no_grad():  # away from the init, where the neighbours' fusion weights are small
        for param in image.parameters():
            param.add_(torch.randn_like(param), alpha=0.1)
    plain.load_state_dict(image.state_dict())  # neither has alignment parameters
    with torch.no_grad():
        warped = image(x, flows)
        repeated = plain(base[:, None].expand(-1, 5, -1, -1, -1))
        unaligned = plain(x)
    interior = (..., slice(8 * 4, -8 * 4))  # 2 LR px of wrap-around and border, 6 px of receptive field
    torch.testing.assert_close(warped[interior], repeated[interior], rtol=0, atol=1e-5)
    assert (unaligned[interior] - repeated[interior]).abs().max() > 0.1
    with pytest.raises(ValueError, match="image_flow' needs flows"):
        image(x)
