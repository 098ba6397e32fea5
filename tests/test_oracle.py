"""The training-free oracle (vsrlab.archs.oracle_arch): bicubic where the neighbours bring nothing, clear
gains from 5 frames with the true flow under the aliasing degradations, its operators are the data's,
and the interface of model.flow_source=batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrlab.archs import Oracle
from vsrlab.archs.oracle_arch import collisions, degradation_operator, invert_flow
from vsrlab.data.degradations import degrade
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.models.flow_source import check_flow_source
from vsrlab.ops.resize import matlab_imresize_tensor


def psnr(out: torch.Tensor, gt: torch.Tensor) -> float:
    """PSNR (dB) of ``(C, H, W)`` images in [0, 1], on their uint8 values."""
    a, b = (out.clamp(0, 1) * 255).round(), (gt * 255).round()
    return float(10 * torch.log10(255**2 / ((a - b) ** 2).mean()))


def windows(degradation: str, speeds: list[float], **options) -> tuple[torch.Tensor, ...]:
    """5-frame windows of pure-translation test clips (2 per speed, LR 32x32): lq ``(B, 5, 3, h, w)``,
    flows ``(B, 5, 2, h, w)``, flow_valid and the centre GT ``(B, 3, H, W)``."""
    ds = SyntheticVideoDataset(
        "test",
        num_frames=5,
        lq_size=(32, 32),
        motion={"preset": "translation"},
        speeds=speeds,
        clips_per_speed=2,
        degradation=degradation,
        **options,
    )
    samples = [ds[i] for i in range(len(ds))]
    return tuple(torch.stack([s[k] for s in samples]) for k in ("lq", "flow", "flow_valid")) + (
        torch.stack([s["gt"][2] for s in samples]),
    )


def gains(out: torch.Tensor, lq: torch.Tensor, gt: torch.Tensor) -> list[float]:
    bicubic = matlab_imresize_tensor(lq[:, 2], 4)
    return [psnr(o, g) - psnr(b, g) for o, b, g in zip(out, bicubic, gt, strict=True)]


# measured (seed 0, these clips): area +2.0..3.3 dB, bicubic_noaa +1.4..2.9, BI +1.5..2.4
@pytest.mark.parametrize(
    "degradation, each, mean", [("area", 1.5, 2.2), ("bicubic_noaa", 1.0, 1.8), ("BI", 1.0, 1.6)]
)
def test_five_frames_beat_bicubic_with_the_true_flow(degradation, each, mean):
    lq, flows, _, gt = windows(degradation, [1, 2])
    with torch.no_grad():
        out = Oracle(degradation=degradation)(lq, flows=flows)
    assert out.shape == gt.shape
    g = gains(out, lq, gt)
    assert min(g) >= each and np.mean(g) >= mean, g
    # a batch is its windows one by one
    with torch.no_grad():
        alone = Oracle(degradation=degradation)(lq[1:2], flows=flows[1:2])
    torch.testing.assert_close(alone[0], out[1], atol=2e-4, rtol=0)


def test_bicubic_where_the_neighbours_bring_nothing():
    lq, flows, _, _ = windows("area", [0.5])
    bicubic = matlab_imresize_tensor(lq[:, 2], 4)
    net = Oracle(degradation="area")
    centre = lq[:, 2:3]
    with torch.no_grad():
        assert torch.equal(Oracle(num_frame=1, degradation="area")(centre), bicubic)  # one frame
        copies = centre.expand(-1, 5, -1, -1, -1)  # identity flow, the same frame: nothing new
        assert torch.equal(net(copies, flows=torch.zeros_like(flows)), bicubic)
        away = torch.full_like(flows, 1000.0)  # every point leaves the frame
        assert torch.equal(net(lq, flows=away), bicubic)
        static = windows("area", [0])  # a static clip: true flows zero up to 1e-15, equal frames
        assert torch.equal(net(static[0], flows=static[1]), matlab_imresize_tensor(static[0][:, 2], 4))
        with pytest.warns(UserWarning, match="set model.flow_source=batch"):
            assert torch.equal(net(lq), bicubic)


def test_noise_averages_out_at_speed_zero():
    lq, flows, _, gt = windows("area", [0], noise_sigma=10)
    with torch.no_grad():
        g = gains(Oracle(degradation="area", noise_sigma=10)(lq, flows=flows), lq, gt)
    assert min(g) >= 0.4, g  # measured +0.6..1.3 dB (the noise is ~1.2 dB of bicubic's error here)


def test_occluders_in_the_lr_frames_are_filled_from_the_neighbours():
    lq, flows, _, gt = windows("area", [1, 2], occlusions=True)
    clean = windows("area", [1, 2])[0]
    with torch.no_grad():
        out = Oracle(degradation="area", occlusions=True)(lq, flows=flows)
    g = gains(out, lq, gt)
    assert min(g) >= 3.0, g  # measured +4.1..9.9 dB
    # inside the centre frame's rectangles: close to the clean oracle, far from bicubic of the holes
    hole = (lq[:, 2] != clean[:, 2]).any(1, keepdim=True)
    hole = torch.nn.functional.interpolate(hole.float(), scale_factor=4).bool().expand_as(gt)
    bicubic = matlab_imresize_tensor(lq[:, 2], 4)
    err_oracle = float(((out.clamp(0, 1) - gt)[hole] ** 2).mean())
    err_bicubic = float(((bicubic.clamp(0, 1) - gt)[hole] ** 2).mean())
    assert err_oracle < 0.1 * err_bicubic


@pytest.mark.parametrize("degradation", ["BI", "BD", "area", "bicubic_noaa"])
def test_the_degradation_operator_is_the_datas(degradation):
    frames = np.random.default_rng(7).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double()
    lr = degradation_operator(degradation, 4)(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(np.clip(np.floor(lr + 0.5), 0, 255), degrade(frames, 4, degradation))
    magnitude = degradation_operator(degradation, 4, magnitude=True)(x.abs()).permute(0, 2, 3, 1).numpy()
    assert (magnitude >= np.abs(lr) - 1e-9).all()


def test_flow_inversion_and_collisions():
    flow = torch.zeros(1, 2, 24, 24)
    flow[:, 0] = 2.5  # everything moves 2.5 px right ...
    flow[:, :, 8:14, 8:14] = torch.tensor([-3.0, 1.0]).view(1, 2, 1, 1)  # ... but a square, elsewhere
    inverse, consistent = invert_flow(flow)
    torch.testing.assert_close(inverse[:, :, 20, 2], torch.tensor([[-2.5, 0.0]]))
    assert bool(consistent[0, 0, 20, 2])
    hit = collisions(flow)[0, 0]
    assert bool(hit[11, 7]) and not bool(hit[20, 20])  # where the square lands on the moved background
    assert not bool(hit[11, 12])  # where it was: nothing lands there (a disocclusion, not a collision)


def test_the_flow_source_interface():
    net = Oracle()
    assert check_flow_source("batch", net) == "batch" and net.temporal == "window"
    assert sum(p.numel() for p in net.parameters()) == 0
    lq, flows, valid, _ = windows("BI", [2])
    with torch.inference_mode():  # as Lightning's test loop runs it
        out = net(lq[:1], flows=flows[:1], valid=valid[:1])
    assert out.shape == (1, 3, 128, 128) and not out.requires_grad
    with pytest.raises(ValueError, match=r"flows must be \(B, T, 2, h, w\)"):
        net(lq, flows=flows[:, :3])
