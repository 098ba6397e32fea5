"""vsrlab.analysis.offsets: learned offsets versus optical flow (Chan et al. 2021, Figs. 4-6)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

from vsrlab.analysis.offsets import analyse_frame, offsets_as_flows, rank_offsets, run_offsets
from vsrlab.archs import SlidingWindowVSR
from vsrlab.data import SyntheticVideoDataset
from vsrlab.ops import (
    DeformableAlignment,
    deform_conv2d,
    deform_sample,
    flow_warp,
    kernel_taps,
    window_indices,
)
from vsrlab.utils.figures import png_text


def _known_flows(g: int, n: int, h: int, w: int) -> torch.Tensor:
    """``(1, G, N, 2, h, w)`` (x, y) flows, different per group and offset, varying over the image."""
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    fields = [
        torch.stack([(i + 1) * torch.sin(xs / 3 + k), (k - 1.5) * torch.cos(ys / 4 - i) + 0.1 * xs])
        for i in range(g)
        for k in range(n)
    ]
    return torch.stack(fields).view(1, g, n, 2, h, w)


def _as_offset(flows: torch.Tensor) -> torch.Tensor:
    """The deform_conv2d layout built channel by channel: ``g*2N + 2n`` = dy, ``+1`` = dx."""
    b, g, n, _, h, w = flows.shape
    offset = torch.empty(b, 2 * g * n, h, w)
    for i in range(g):
        for k in range(n):
            offset[:, i * 2 * n + 2 * k] = flows[:, i, k, 1]
            offset[:, i * 2 * n + 2 * k + 1] = flows[:, i, k, 0]
    return offset


def test_offsets_as_flows_regroups_the_deform_conv_layout_and_warps_like_flow_warp():
    g, n, h, w = 2, 3, 9, 11
    flows = _known_flows(g, n, h, w)
    offset = _as_offset(flows)
    taps = torch.tensor([[-1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    assert torch.equal(offsets_as_flows(offset, taps), flows)
    full = offsets_as_flows(offset, taps, include_taps=True)
    assert torch.equal(full, flows + taps.flip(1).view(1, 1, n, 2, 1, 1))

    x = torch.rand(1, 4, h, w)  # two channels per group
    samples = deform_sample(x, offset, taps)  # (1, 4, N, h, w)
    for i in range(g):
        for k in range(n):
            expect = flow_warp(x[:, 2 * i : 2 * i + 2], full[:, i, k])
            torch.testing.assert_close(samples[:, 2 * i : 2 * i + 2, k], expect, atol=1e-5, rtol=0)

    # a 1x1 identity kernel: the deformable convolution is the warp by the single offset of each group
    one = offset[:, [0, 1, 2 * n, 2 * n + 1]]  # tap 0 of each group, as a G x 1 offset tensor
    out = deform_conv2d(x, one, torch.eye(4).view(4, 4, 1, 1))
    recovered = offsets_as_flows(one, kernel_taps(1))
    for i in range(g):
        expect = flow_warp(x[:, 2 * i : 2 * i + 2], recovered[:, i, 0])
        torch.testing.assert_close(out[:, 2 * i : 2 * i + 2], expect, atol=1e-5, rtol=0)


def test_fraction_under_one_pixel_and_histogram_of_a_set_offset():
    h = w = 16
    align = DeformableAlignment(4, 4, 4, offset_groups=1, num_offsets=1, modulated=False)
    with torch.no_grad():
        align.conv_offset.bias.copy_(torch.tensor([0.0, 2.0]))  # (dy, dx): 2 px to the right everywhere
    align(torch.rand(1, 4, h, w), torch.rand(1, 4, h, w))
    flow = torch.zeros(2, h, w)
    flow[0, :, : w // 2] = 2.0  # the left half moves with the offset, the right half does not move
    valid = torch.ones(1, h, w)
    valid[:, : h // 2, w // 2 :] = 0  # a quarter of the image hidden: 128 exact + 64 off by 2 px
    frame = torch.rand(3, h, w)
    numbers, maps = analyse_frame(align.last_offset[0], align.taps, frame, frame, flow, valid)
    comp = numbers["flow_comparison"]
    assert comp["fraction_under_1px"] == pytest.approx(128 / 192)
    assert comp["error_mean_px"] == pytest.approx(2.0 * 64 / 192)
    assert comp["histogram"]["counts"][0] == 128 and comp["histogram"]["counts"][8] == 64
    assert sum(comp["histogram"]["counts"]) == 192 and comp["histogram"]["overflow"] == 0
    assert comp["ranking"] is None and numbers["diversity_px"]["mean"] == 0.0
    assert numbers["reference_flow"] == {"resized_to_module": False, "valid_fraction": 0.75}


def test_offsets_ranked_by_l1_distance_to_the_flow():
    g, n, h, w = 2, 4, 6, 7
    ref = _known_flows(1, 1, h, w)[0, 0, 0]
    flows = torch.empty(g, n, 2, h, w)
    for k in range(n):
        step = torch.tensor([k / 2, -k / 2]).view(2, 1, 1)  # L1 distance k
        flows[0, k] = ref + step
        flows[1, n - 1 - k] = ref - step
    ranking = rank_offsets(flows, ref, torch.ones(1, h, w, dtype=torch.bool))
    assert [r["offset"] for r in ranking["per_group"][0]] == [0, 1, 2, 3]
    assert [r["offset"] for r in ranking["per_group"][1]] == [3, 2, 1, 0]
    for group in ranking["per_group"]:
        assert [r["mean_l1_px"] for r in group] == pytest.approx([0, 1, 2, 3], abs=1e-5)
    assert ranking["mean_l1_px_per_rank"] == pytest.approx([0, 1, 2, 3], abs=1e-5)


@pytest.fixture(scope="module")
def clip():
    ds = SyntheticVideoDataset(split="val", num_clips=1, num_frames=5, lq_size=(32, 32), scale=4, seed=0)
    return ds[0]


def _tiny(groups: int, offsets: int) -> SlidingWindowVSR:
    torch.manual_seed(0)
    return SlidingWindowVSR(
        num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1, upscale=2,
        deformable_groups=groups, num_offsets=offsets, offset_base="zero",
    )  # fmt: skip


def test_run_offsets_writes_figures_and_json(clip, tmp_path):
    net = _tiny(2, 4)
    for p in net.dcn.conv_offset.parameters():
        nn.init.normal_(p, std=0.2)  # offsets that differ per group and offset
    result = run_offsets(net, clip, tmp_path, max_offsets_drawn=3)
    assert result["frame"] == 1 and result["centre_frame"] == 2 and set(result["modules"]) == {"dcn"}
    assert set(result["modules"]["dcn"]) == {"1", "3"}  # the window's neighbours, not the centre
    names = sorted(p.rsplit("/", 1)[-1] for p in result["figures"])
    assert names == [f"dcn_frame1_{k}.png" for k in ("diversity", "error_hist", "flows", "warps")]
    assert all((tmp_path / name).stat().st_size > 0 for name in names)
    saved = json.loads((tmp_path / "offsets.json").read_text())
    assert saved == json.loads(json.dumps(result))
    entry = saved["modules"]["dcn"]["1"]
    assert {"diversity_px", "flow_comparison", "warps", "reference_flow"} <= set(entry)
    assert len(entry["flow_comparison"]["ranking"]["mean_l1_px_per_rank"]) == 4
    assert len(entry["warps"]["offset_psnr"]) == 8 and entry["diversity_px"]["mean"] > 0
    assert entry["warps"]["reference_flow_psnr"] > entry["warps"]["unaligned_psnr"]
    flows = png_text(tmp_path / "dcn_frame1_flows.png")  # labelled figures
    assert flows["Title"] == "dcn, frame 1: learned offsets"
    assert flows["Description"].startswith("rows: group 0, group 1; panels: reference flow | offset 1 |")
    assert flows["Comment"].startswith("colour wheel: hue = direction, saturation = length, full at")
    warps = png_text(tmp_path / "dcn_frame1_warps.png")["Description"].split(" | ")
    assert warps[2] == f"warped by flow\n{entry['warps']['reference_flow_psnr']:.2f} dB"
    assert len(warps) == 3 + 3  # centre, neighbour, flow warp, max_offsets_drawn=3 offset warps
    assert png_text(tmp_path / "dcn_frame1_diversity.png")["Comment"].startswith("colour bar: diversity (px)")

    bare = run_offsets(net, {"lq": clip["lq"]}, tmp_path / "bare", frame=3)
    assert bare["reference_flow"] is None and bare["modules"]["dcn"]["3"]["flow_comparison"] is None
    assert not any("error_hist" in p for p in bare["figures"]) and len(bare["figures"]) == 3
    with pytest.raises(ValueError, match="frame=2"):
        run_offsets(net, clip, tmp_path, frame=2)
    with pytest.raises(ValueError, match="SlidingWindowVSR has no DeformableAlignment"):
        run_offsets(SlidingWindowVSR(num_feat=8, num_frame=3, align_type="none"), clip, tmp_path)


class _FixedOffsets(nn.Module):
    """A conv_offset stub: predicts the given offsets whatever the condition."""

    def __init__(self, offsets: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)  # DeformableAlignment zero-initialises the last conv
        self.offsets = offsets

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.offsets


def test_offsets_set_to_the_true_flow_are_all_within_one_pixel(clip, tmp_path):
    net = _tiny(1, 1)
    window = window_indices(2, 5, 3, "reflection")
    true = clip["flow"][window].flip(1)  # (T, 2, h, w) as (dy, dx)
    net.dcn.conv_offset = _FixedOffsets(torch.cat([true, torch.full_like(true[:, :1], 10.0)], 1))
    result = run_offsets(net, clip, tmp_path)
    for t in ("1", "3"):
        entry = result["modules"]["dcn"][t]
        assert entry["flow_comparison"]["fraction_under_1px"] == 1.0
        assert entry["flow_comparison"]["error_mean_px"] < 1e-6
        warps = entry["warps"]
        assert warps["offset_psnr"][0]["psnr"] == pytest.approx(warps["reference_flow_psnr"], abs=1e-4)
        assert math.isfinite(warps["reference_flow_psnr"])


class _ConstantFlow(nn.Module):
    """A SPyNet stub: the flow (x=1, y=-0.5) between any two frames."""

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return torch.tensor([1.0, -0.5]).view(1, 2, 1, 1).expand(ref.shape[0], 2, *ref.shape[-2:])


def test_basicvsrpp_offsets_are_attributed_to_frames_with_the_flow_prior(tmp_path):
    from vsrlab.archs import BasicVSRPlusPlus

    torch.manual_seed(0)
    net = BasicVSRPlusPlus(mid_channels=8, num_blocks=1, deformable_groups=2)
    net.spynet = _ConstantFlow()
    net.upsample = lambda lqs, feats, device: lqs  # the 64-channel HR reconstruction: no offsets, slow
    for align in net.deform_align.values():  # residue 0.5 px in x on every tap: tanh^-1(0.5 / 10)
        last = align.conv_offset[-1]
        with torch.no_grad():
            last.bias[: 2 * 2 * 9 : 2].zero_()
            last.bias[1 : 2 * 2 * 9 : 2].fill_(math.atanh(0.05))
    length, h = 4, 64  # centre frame 2; SPyNet's minimum size
    flow = torch.zeros(length, 2, h, h)
    flow[:, 0], flow[:, 1] = 1.5, -0.5  # the prior plus the residue, for frames 1 and 3
    clip = {"lq": torch.rand(length, 3, h, h), "flow": flow}
    result = run_offsets(net, clip, tmp_path, frame=3, modules=["deform_align.backward_1"])
    assert result["network"] == "BasicVSRPlusPlus" and list(result["modules"]) == ["deform_align.backward_1"]
    entry = result["modules"]["deform_align.backward_1"]["3"]  # first step of the backward branch
    assert set(result["modules"]["deform_align.backward_1"]) == {"3"} and entry["groups_of_module"] == [0]
    assert entry["residual"]["abs_mean_px"] == pytest.approx(0.25, abs=1e-6)  # dx 0.5, dy 0
    assert entry["residual"]["prior_error_mean_px"] == pytest.approx(0.5, abs=1e-6)
    assert entry["flow_comparison"]["error_mean_px"] == pytest.approx(0.0, abs=1e-5)
    assert any(p.endswith("_residual.png") for p in result["figures"])

    forward = run_offsets(net, clip, tmp_path / "fwd", modules=["deform_align.forward_1"])
    assert forward["frame"] == 0 and set(forward["modules"]["deform_align.forward_1"]) == {"0", "1"}
    assert forward["modules"]["deform_align.forward_1"]["0"]["groups_of_module"] == [1]  # second order


class _RecurrentStub(nn.Module):
    temporal = "recurrent"

    def __init__(self) -> None:
        super().__init__()
        self.align = DeformableAlignment(4, 4, 4, offset_groups=1, num_offsets=1)


def test_unsupported_recurrent_network_is_named():
    with pytest.raises(ValueError, match="_RecurrentStub is recurrent: .*BasicVSRPlusPlus"):
        run_offsets(_RecurrentStub(), {"lq": torch.rand(3, 3, 8, 8)}, "unused")
