"""Published numbers reproduced from the real Vid4 frames in ../shared (skipped when absent)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsrlab.metrics import calculate_psnr, calculate_ssim
from vsrlab.ops.resize import matlab_imresize

VID4_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "vid4"

pytestmark = pytest.mark.realdata


def natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@pytest.mark.skipif(not (VID4_ROOT / "GT").is_dir(), reason=f"{VID4_ROOT} is absent")
def test_vid4_bicubic_baseline_bi_matches_published():
    """x4 BI + MATLAB bicubic upsampling on Vid4, Y channel, no crop: 23.78 dB / 0.6347 (BasicVSR,
    Table 1)."""
    clip_psnr, clip_ssim, frames = [], [], 0
    for clip in sorted(p for p in (VID4_ROOT / "GT").iterdir() if p.is_dir()):
        psnr, ssim = [], []
        for path in sorted(clip.iterdir(), key=lambda p: natural(p.name)):
            gt = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            sr = matlab_imresize(matlab_imresize(gt, 1 / 4), 4)
            psnr.append(calculate_psnr(sr, gt, 0, test_y_channel=True))
            ssim.append(calculate_ssim(sr, gt, 0, test_y_channel=True))
        clip_psnr.append(np.mean(psnr))
        clip_ssim.append(np.mean(ssim))
        frames += len(psnr)
    assert frames == 171
    assert round(float(np.mean(clip_psnr)), 2) == 23.78
    assert round(float(np.mean(clip_ssim)), 4) == 0.6347


@pytest.mark.skipif(not (VID4_ROOT / "GT").is_dir(), reason=f"{VID4_ROOT} is absent")
def test_vsrlab_eval_bicubic_on_vid4_reproduces_the_published_baseline(tmp_path):
    """`vsrlab-eval arch=bicubic data=vid4 data.root=<Vid4>`: LR made from GT (BI), Y channel ->
    23.78 / 0.6347."""
    from conftest import compose_config
    from vsrlab.apps.evaluate import evaluate

    cfg = compose_config(
        "eval",
        [
            "arch=bicubic",
            "data=vid4",
            f"data.root={VID4_ROOT}",
            "extras.print_config=false",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
    )
    results = evaluate(cfg)
    assert {name: row["frames"] for name, row in results["clips"].items()} == {
        "calendar": 41,
        "city": 34,
        "foliage": 49,
        "walk": 47,
    }
    assert round(results["mean"]["psnr"], 2) == 23.78
    assert round(results["mean"]["ssim"], 4) == 0.6347
    # the real set is the published one: no problem reported, the fingerprint covers every frame
    data = results["data"]
    assert data["test_set"] == "Vid4" and data["problems"] == []
    assert data["fingerprint"]["clips"] == 4 and data["fingerprint"]["frames"] == 171
    assert {c: tuple(fp["gt_size"]) for c, fp in data["clips"].items()} == {
        "calendar": (720, 576),
        "city": (704, 576),
        "foliage": (720, 480),
        "walk": (720, 480),
    }


@pytest.mark.skipif(not (VID4_ROOT / "GT").is_dir(), reason=f"{VID4_ROOT} is absent")
def test_vid4_bicubic_baseline_bd_within_published_rounding():
    """BD (BasicSR's Gaussian sigma 1.6, 13x13, every 4th pixel) + bicubic: 21.80 dB published; we
    measure 21.79."""
    from vsrlab.data.degradations import blur_downsample

    clip_psnr = []
    for clip in sorted(p for p in (VID4_ROOT / "GT").iterdir() if p.is_dir()):
        psnr = []
        for path in sorted(clip.iterdir(), key=lambda p: natural(p.name)):
            gt = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            sr = matlab_imresize(blur_downsample(gt, 4), 4)
            psnr.append(calculate_psnr(sr, gt, 0, test_y_channel=True))
        clip_psnr.append(np.mean(psnr))
    assert abs(float(np.mean(clip_psnr)) - 21.80) < 0.015
