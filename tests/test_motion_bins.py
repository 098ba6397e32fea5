"""Scores per motion bin (vsrlab.metrics.motion): the definitions on hand-made examples and on clips
with known motion, evaluation writing them into metrics.json, and their report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_report import write_job, write_manifest

from vsrlab.apps.evaluate import evaluate
from vsrlab.apps.train import train
from vsrlab.cli.report import main as report_main
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.metrics import calculate_ssim
from vsrlab.metrics.image import rgb_to_y, ssim_map
from vsrlab.metrics.motion import (
    CONFIG_KEY,
    DEFAULT_EDGES,
    ClipMotion,
    MotionBinsConfig,
    MotionBinScores,
    bin_index,
    frame_bin_sums,
    motion_to_hr,
    neighbour_motion,
)
from vsrlab.ops.resize import matlab_imresize, matlab_imresize_tensor
from vsrlab.utils.images import frames_to_tensor, to_uint8_hwc

PURE_TRANSLATION = dict(camera_rotation=0.0, camera_zoom=0.0, camera_acceleration=0.0, object_rotation=0.0)


def psnr_of_mse(mse: float) -> float:
    return 10 * math.log10(255.0**2 / mse)


def noisy_pair(seed: int, size: tuple[int, int] = (32, 32)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    out = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    return out, gt


# ----------------------------------------------------------------------------------------- definitions


def test_neighbour_motion_is_the_mean_magnitude_over_existing_neighbours() -> None:
    nan = float("nan")
    flow_prev = torch.tensor([[[[nan]], [[nan]]], [[[3.0]], [[4.0]]], [[[0.0]], [[1.0]]]])  # (3, 2, 1, 1)
    flow_next = torch.tensor([[[[6.0]], [[8.0]]], [[[1.0]], [[0.0]]], [[[nan]], [[nan]]]])
    motion = neighbour_motion(flow_prev, flow_next)
    assert motion.shape == (3, 1, 1)
    assert motion.flatten().tolist() == [10.0, 3.0, 1.0]  # |(6, 8)|; (5 + 1) / 2; |(0, 1)|
    single = torch.full((1, 2, 2, 2), nan)
    assert neighbour_motion(single, single).tolist() == [[[0.0, 0.0], [0.0, 0.0]]]  # no neighbours


def test_bins_are_half_open_and_nearest_upsampling_repeats_lr_pixels() -> None:
    edges = [0.0, 1.0, 4.0, math.inf]
    values = np.array([0.0, 0.999, 1.0, 3.99, 4.0, 1e9, math.inf, -0.5, math.nan])
    assert bin_index(values, edges).tolist() == [0, 0, 1, 1, 2, 2, -1, -1, -1]
    assert bin_index(np.array([2.0, 5.0]), [1.0, 4.0]).tolist() == [0, -1]
    hr = motion_to_hr(np.array([[1.0, 2.0], [3.0, 4.0]]), 2)
    assert hr.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_ssim_map_is_calculate_ssim_per_pixel_and_scikit_images() -> None:
    from skimage.metrics import structural_similarity

    out, gt = noisy_pair(0, (40, 36))
    ssim = ssim_map(out, gt)
    assert ssim.shape == (30, 26)
    assert ssim.mean() == pytest.approx(calculate_ssim(out, gt), abs=1e-12)
    _, full = structural_similarity(out.astype(np.float64), gt.astype(np.float64), channel_axis=2,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, full=True)  # fmt: skip
    np.testing.assert_allclose(full.mean(axis=2)[5:-5, 5:-5], ssim, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("crop_border", "test_y_channel"), [(0, False), (2, True)])
def test_bin_psnr_and_ssim_equal_direct_computation_on_the_mask(
    crop_border: int, test_y_channel: bool
) -> None:
    out, gt = noisy_pair(1)
    bicubic, _ = noisy_pair(2)
    motion_lr = np.full((8, 8), 0.5)
    motion_lr[:, 4:] = 5.0  # right half: bin [4, 8)
    motion_lr[6:, :] = 20.0  # bottom quarter: bin >= 16
    motion = motion_to_hr(motion_lr, 4)
    edges = (0.0, 1.0, 4.0, 8.0, 16.0, math.inf)
    sums = frame_bin_sums(out, bicubic, gt, motion, edges, crop_border, test_y_channel)

    def values(img: np.ndarray) -> np.ndarray:
        v = rgb_to_y(img) if test_y_channel else img.astype(np.float64)
        return v[crop_border : 32 - crop_border, crop_border : 32 - crop_border]

    c = crop_border
    cropped = motion[c : 32 - c, c : 32 - c]
    ssim = ssim_map(out, gt, crop_border, test_y_channel)
    for i, expected_pixels in enumerate(np.bincount(bin_index(cropped, edges).ravel(), minlength=5)):
        mask = (cropped >= edges[i]) & (cropped < edges[i + 1])
        assert sums.pixels[i] == expected_pixels == mask.sum()
        if not mask.any():
            assert sums.sse[i] == 0 and sums.ssim_pixels[i] == 0
            continue
        mse = np.mean((values(out) - values(gt))[mask] ** 2)  # over the bin's pixels and channels
        mse_bicubic = np.mean((values(bicubic) - values(gt))[mask] ** 2)
        assert sums.sse[i] / (sums.pixels[i] * sums.channels) == pytest.approx(mse, rel=1e-12)
        assert sums.sse_bicubic[i] / (sums.pixels[i] * sums.channels) == pytest.approx(mse_bicubic, rel=1e-12)
        ssim_mask = mask[5:-5, 5:-5]
        assert sums.ssim_pixels[i] == ssim_mask.sum()
        assert sums.ssim_sum[i] / sums.ssim_pixels[i] == pytest.approx(ssim[ssim_mask].mean(), rel=1e-12)
    assert sums.pixels[1] == 0  # no motion in [1, 4)
    assert sums.channels == (1 if test_y_channel else 3)


def test_constant_speed_translation_puts_every_pixel_in_its_bin() -> None:
    """Camera and object both translate at 10 LR pixels per frame: every pixel of every frame lies in
    the bin [8, 16), whose PSNR is the one of the whole clip's pooled MSE."""
    motion_cfg = dict(speed=[10, 10], **PURE_TRANSLATION)
    data = SyntheticVideoDataset(
        "val", num_clips=2, num_frames=4, lq_size=(16, 16), seed=2, motion=motion_cfg
    )
    scores = MotionBinScores(DEFAULT_EDGES)
    sse, pixels = 0.0, 0
    for i in range(2):
        s = data[i]
        motion = neighbour_motion(s["flow_prev"], s["flow_next"])
        np.testing.assert_allclose(motion.numpy(), 10.0, rtol=1e-5)
        bicubic = matlab_imresize_tensor(s["lq"], 4)
        out = (bicubic + 0.01).clamp(0, 1)  # "a model": not bicubic, so the two PSNRs differ
        scores.update(i, data.clip_name(i), list(range(4)), out, bicubic, s["gt"], motion)
        diff = to_uint8_hwc(out).astype(np.float64) - to_uint8_hwc(s["gt"]).astype(np.float64)
        sse, pixels = sse + float((diff**2).sum()), pixels + diff.size // 3
    results = scores.results()
    overall = results["overall"]
    assert [b["pixels"] for b in overall] == [0, 0, 0, 0, 2 * 4 * 64 * 64, 0]
    assert overall[4]["psnr"] == pytest.approx(psnr_of_mse(sse / (3 * pixels)), abs=1e-9)
    assert overall[4]["psnr"] != pytest.approx(overall[4]["psnr_bicubic"], abs=1e-3)
    assert [b["psnr"] for b in overall[:4]] == [None] * 4 and overall[5]["ssim"] is None
    assert set(results["clips"]) == {"val_00000", "val_00001"} and results["flow"] == "batch"
    assert results["edges"][:-1] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0] and math.isinf(results["edges"][-1])


def test_overall_pools_pixels_over_clips_and_frames_count_once() -> None:
    edges = (0.0, 2.0, math.inf)
    scores = MotionBinScores(edges)
    direct = {0: [0.0, 0, 0.0, 0], 1: [0.0, 0, 0.0, 0]}  # bin: [sse, pixels, ssim sum, ssim pixels]
    clips = {0: (3, (32, 32)), 1: (1, (24, 40))}  # clips of different lengths and sizes
    for clip, (num_frames, (h, w)) in clips.items():
        outs, gts, motions = [], [], []
        for f in range(num_frames):
            out, gt = noisy_pair(10 * clip + f, (h, w))
            motion_lr = np.where(np.arange(w // 4)[None, :] < f + 2, 1.0, 3.0).repeat(h // 4, axis=0)
            outs.append(out), gts.append(gt), motions.append(motion_lr)
            hr, ssim = motion_to_hr(motion_lr, 4), ssim_map(out, gt)
            for b in (0, 1):
                mask = (hr >= edges[b]) & (hr < edges[b + 1])
                direct[b][0] += float(((out.astype(float) - gt) ** 2)[mask].sum())
                direct[b][1] += int(mask.sum())
                direct[b][2] += float(ssim[mask[5:-5, 5:-5]].sum())
                direct[b][3] += int(mask[5:-5, 5:-5].sum())
        out_t, gt_t = frames_to_tensor(np.stack(outs)), frames_to_tensor(np.stack(gts))
        motion_t = torch.from_numpy(np.stack(motions))
        scores.update(clip, f"clip{clip}", list(range(num_frames)), out_t, out_t, gt_t, motion_t)
        scores.update(clip, f"clip{clip}", [0], out_t[:1], out_t[:1], gt_t[:1], motion_t[:1])  # seen twice
    overall = scores.results()["overall"]
    assert sum(b["pixels"] for b in overall) == 3 * 32 * 32 + 24 * 40
    for b in (0, 1):
        assert overall[b]["pixels"] == direct[b][1] and overall[b]["ssim_pixels"] == direct[b][3]
        assert overall[b]["psnr"] == pytest.approx(psnr_of_mse(direct[b][0] / (3 * direct[b][1])), abs=1e-9)
        assert overall[b]["ssim"] == pytest.approx(direct[b][2] / direct[b][3], abs=1e-12)
    clip1 = scores.results()["clips"]["clip1"]
    assert sum(b["pixels"] for b in clip1) == 24 * 40


# ----------------------------------------------------------------------------- config, flow sources


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    assert MotionBinsConfig.from_config(None) is None
    assert MotionBinsConfig.from_config({}) == MotionBinsConfig(DEFAULT_EDGES, "auto", None)
    with pytest.raises(ValueError, match=f"unknown keys \\['edge'\\] in {CONFIG_KEY}"):
        MotionBinsConfig.from_config({"edge": [0, 1]})
    with pytest.raises(ValueError, match=f"{CONFIG_KEY}.edges must be"):
        MotionBinsConfig.from_config({"edges": [0, 4, 2]})
    with pytest.raises(ValueError, match=f"{CONFIG_KEY}.flow must be one of"):
        MotionBinsConfig.from_config({"flow": "raft"})
    with pytest.raises(ValueError, match=f"{CONFIG_KEY}.spynet_path is not set: flow=spynet"):
        MotionBinsConfig.from_config({"flow": "spynet"})
    missing = tmp_path / "nope" / "spynet.pth"
    with pytest.raises(FileNotFoundError, match=f"{CONFIG_KEY}.spynet_path: no SPyNet weights at {missing}"):
        MotionBinsConfig.from_config({"flow": "spynet", "spynet_path": str(missing)})


def test_data_without_true_flow_needs_spynet_path_and_uses_spynet(tmp_path: Path) -> None:
    from vsrlab.archs import SPyNet

    sample = SyntheticVideoDataset("val", num_clips=1, num_frames=3, lq_size=(16, 16))[0]
    real = {"lq": sample["lq"][None], "key": ["clip_a"]}  # like real data: no flow_prev / flow_next
    with pytest.raises(
        ValueError, match=f"{CONFIG_KEY}.spynet_path is not set: clip clip_a has no true flow"
    ):
        ClipMotion(MotionBinsConfig.from_config({}))(real, sample["lq"], [0, 1, 2])
    with pytest.raises(KeyError, match=f"{CONFIG_KEY}.flow=batch but the batch has no flow_prev"):
        ClipMotion(MotionBinsConfig.from_config({"flow": "batch"}))(real, sample["lq"], [0])

    torch.save({"params": SPyNet().state_dict()}, tmp_path / "spynet.pth")
    motion, source = ClipMotion(MotionBinsConfig.from_config({"spynet_path": str(tmp_path / "spynet.pth")}))(
        real, sample["lq"], [0, 2]
    )
    assert source == "spynet" and motion.shape == (2, 16, 16) and bool(motion.isfinite().all())
    batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in sample.items()}
    motion, source = ClipMotion(MotionBinsConfig.from_config({}))(batch, sample["lq"], [1])
    assert source == "batch"
    torch.testing.assert_close(motion, neighbour_motion(sample["flow_prev"][1:2], sample["flow_next"][1:2]))


# ----------------------------------------------------------------------------------------- evaluation


def test_eval_writes_motion_bins_into_metrics_json(make_cfg, tmp_path: Path) -> None:
    overrides = [
        "extras.print_config=false",
        "data.val.num_clips=2",
        "data.val.num_frames=4",
        "data.val.lq_size=[20,20]",
        "data.val.motion={speed:[0,12]}",
        "trainer.enable_progress_bar=false",
        "+model.evaluation.motion_bins.edges=[0,1,2,4,8,16,inf]",
    ]
    evaluate(make_cfg("eval", overrides=overrides))
    bins = json.loads((tmp_path / "run" / "metrics.json").read_text())["motion_bins"]
    assert bins["edges"] == [0, 1, 2, 4, 8, 16, math.inf] and bins["flow"] == "batch"
    total = 2 * 4 * 80 * 80  # clips x frames x HR pixels: every evaluated pixel is in a bin
    assert sum(b["pixels"] for b in bins["overall"]) == total
    assert sum(b["ssim_pixels"] for b in bins["overall"]) == 2 * 4 * 70 * 70
    assert all(sum(b["pixels"] for b in clip) == total // 2 for clip in bins["clips"].values())
    assert sum(b["pixels"] > 0 for b in bins["overall"]) >= 3  # the motion spreads over bins

    # the bins' pooled MSE is the MSE of all pixels, computed directly (bicubic: output = baseline)
    data = SyntheticVideoDataset(
        "val", num_clips=2, num_frames=4, lq_size=(20, 20), seed=0, motion={"speed": [0, 12]}
    )
    sse = 0.0
    for i in range(2):
        s = data[i]
        for low, g in zip(to_uint8_hwc(s["lq"]), to_uint8_hwc(s["gt"]), strict=True):
            sse += float(((matlab_imresize(low, 4).astype(float) - g) ** 2).sum())
    pooled = sum(255.0**2 / 10 ** (b["psnr"] / 10) * b["pixels"] for b in bins["overall"] if b["pixels"])
    assert pooled / total == pytest.approx(sse / (3 * total), rel=1e-9)
    assert all(b["psnr"] == b["psnr_bicubic"] for b in bins["overall"])


def test_training_test_step_reports_motion_bins(make_cfg) -> None:
    results = train(make_cfg(overrides=["debug=fdr", "model.evaluation.motion_bins={edges:[0,4,inf]}"]))
    bins = results["test"]["motion_bins"]
    assert [(b["lo"], b["hi"]) for b in bins["overall"]] == [(0.0, 4.0), (4.0, math.inf)]
    assert sum(b["pixels"] for b in bins["overall"]) == 5 * 96 * 96  # fdr: one test clip of 5 frames
    assert "motion_bins" not in train(make_cfg(overrides=["debug=fdr"], run="off"))["test"]


# ----------------------------------------------------------------------------------------- report


def _bins(psnr: list[float | None], bicubic: list[float]) -> dict:
    """``motion_bins`` of a metrics.json with bins [0, 2), [2, 8), [8, inf) of 100, 200, 300 pixels."""
    edges = [0.0, 2.0, 8.0, math.inf]
    overall = [
        {
            "lo": lo,
            "hi": hi,
            "psnr": p,
            "psnr_bicubic": b,
            "ssim": 0.8,
            "pixels": 100 * (i + 1),
            "ssim_pixels": 50,
        }
        for i, (lo, hi, p, b) in enumerate(zip(edges, edges[1:], psnr, bicubic, strict=False))
    ]
    return {"edges": edges, "flow": "batch", "definition": "test", "overall": overall, "clips": {}}


def test_report_draws_psnr_and_gain_per_motion_bin(tmp_path: Path) -> None:
    import matplotlib.image

    sweep, key = tmp_path / "sweep", "arch.alignment"
    jobs = [(f"alignment={a},seed={s}", {key: a, "seed": str(s)}) for a in ("none", "flow") for s in (0, 1)]
    write_manifest(sweep, jobs, [key, "seed"], name="motion")
    psnr = {("none", 0): [30.0, 27.0, 24.0], ("none", 1): [30.1, 27.1, 24.2],
            ("flow", 0): [30.2, 28.0, 26.5], ("flow", 1): [30.2, 28.1, None]}  # fmt: skip
    for (align, seed), values in psnr.items():
        metrics = {"test": {"motion_bins": _bins(values, [29.0, 26.0, 23.0])}}
        write_job(sweep, f"alignment={align},seed={seed}", metrics_data=metrics, done=True)
    assert report_main([f"sweep_dir={sweep}"]) == 0
    for name in ("motion_psnr.png", "motion_gain.png"):
        image = matplotlib.image.imread(sweep / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    md = (sweep / "report.md").read_text()
    assert "## PSNR per motion bin (test clips)" in md
    assert "| job | 0-2 | 2-8 | >=8 |" in md
    assert "| alignment=flow, seed=0 | 30.20 | 28.00 | 26.50 |" in md
    assert "| alignment=flow, seed=1 | 30.20 | 28.10 | — |" in md
    assert "| bicubic | 29.00 | 26.00 | 23.00 |" in md and "| pixels | 100 | 200 | 300 |" in md
    assert "| alignment=flow, seed=0 vs none | +0.20 | +1.00 | +2.50 |" in md
    assert "| alignment=flow, seed=1 vs none | +0.10 | +1.00 | — |" in md
    assert "Figures: `motion_psnr.png`, `motion_gain.png`." in md


def test_report_without_motion_bins_or_baseline(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_manifest(sweep, [("a", {"seed": "0"}), ("b", {"seed": "1"})], ["seed"])
    write_job(
        sweep, "a", metrics_data={"motion_bins": _bins([30.0, 28.0, 25.0], [29.0, 27.0, 24.0])}, done=True
    )
    write_job(sweep, "b", metrics_data={"global_step": 4}, done=True)  # no motion bins: left out
    report_main([f"sweep_dir={sweep}"])
    md = (sweep / "report.md").read_text()
    assert (sweep / "motion_psnr.png").exists() and not (sweep / "motion_gain.png").exists()
    assert "| seed=0 | 30.00 | 28.00 | 25.00 |" in md and "| seed=1 |" not in md
    other = tmp_path / "other"
    write_manifest(other, [("a", {"seed": "0"})], ["seed"])
    write_job(other, "a", metrics_data={"global_step": 4}, done=True)
    report_main([f"sweep_dir={other}"])
    assert not (other / "motion_psnr.png").exists() and "motion bin" not in (other / "report.md").read_text()
