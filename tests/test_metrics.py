"""PSNR / SSIM conventions and the clip-averaged torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from vsrlab.metrics import VideoPSNR, VideoSSIM, calculate_psnr, calculate_ssim, rgb_to_y
from vsrlab.utils.images import to_uint8_hwc


def rand_img(seed: int, shape=(32, 40, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_psnr_known_values():
    img = np.full((16, 16, 3), 100, dtype=np.uint8)
    assert calculate_psnr(img, img + 1) == pytest.approx(10 * np.log10(255**2), abs=1e-12)  # MSE 1: 48.13 dB
    assert calculate_psnr(img, img) == float("inf")
    other = img.copy()
    other[:2] += 10  # only the border rows differ
    assert calculate_psnr(img, other, crop_border=2) == float("inf")


def test_y_channel_is_matlab_luma():
    white, black = np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0) and rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    red = np.array([[[255, 0, 0]]], np.uint8)
    assert rgb_to_y(red)[0, 0] == pytest.approx(16 + 65.481)
    a, b = rand_img(0), rand_img(1)
    mse = np.mean((rgb_to_y(a) - rgb_to_y(b)) ** 2)
    assert calculate_psnr(a, b, test_y_channel=True) == pytest.approx(10 * np.log10(255**2 / mse))


def test_ssim_matches_scikit_image_gaussian_ssim():
    a = rand_img(2)
    b = np.clip(a.astype(int) + np.random.default_rng(3).integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    expected = np.mean(
        [
            structural_similarity(
                a[..., c].astype(float),
                b[..., c].astype(float),
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for c in range(3)
        ]
    )
    assert calculate_ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert calculate_ssim(a, a) == pytest.approx(1.0)
    y_expected = structural_similarity(
        rgb_to_y(a),
        rgb_to_y(b),
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert calculate_ssim(a, b, test_y_channel=True) == pytest.approx(y_expected, abs=1e-9)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        calculate_psnr(rand_img(0), rand_img(0, (32, 41, 3)))
    with pytest.raises(ValueError, match="crop_border"):
        calculate_psnr(rand_img(0), rand_img(1), crop_border=16)


def clip(seed: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(frames, 3, 24, 24, generator=g)
    return (gt + 0.05 * torch.randn(frames, 3, 24, 24, generator=g)).clamp(0, 1), gt


@pytest.mark.parametrize("metric_cls,fn", [(VideoPSNR, calculate_psnr), (VideoSSIM, calculate_ssim)])
def test_video_metric_is_mean_of_clip_means(metric_cls, fn):
    clips = [clip(0, 2), clip(1, 5)]  # unequal lengths: clip mean != frame mean
    metric = metric_cls(test_y_channel=True)
    for i, (pred, gt) in enumerate(clips):
        metric.update(pred, gt, torch.full((len(gt),), i), torch.arange(len(gt)))
    per_clip = [
        np.mean([fn(p, g, 0, True) for p, g in zip(to_uint8_hwc(pred), to_uint8_hwc(gt), strict=True)])
        for pred, gt in clips
    ]
    assert float(metric.compute()) == pytest.approx(np.mean(per_clip), abs=1e-12)
    assert {c: n for c, (_, n) in metric.per_clip().items()} == {0: 2, 1: 5}


def test_video_metric_merges_like_ddp_and_counts_duplicates_once():
    (p0, g0), (p1, g1) = clip(0, 3), clip(1, 3)
    single = VideoPSNR()
    single.update(p0, g0, torch.zeros(3), torch.arange(3))
    single.update(p1, g1, torch.ones(3), torch.arange(3))
    rank0, rank1 = VideoPSNR(), VideoPSNR()
    rank0.update(p0, g0, torch.zeros(3), torch.arange(3))
    rank1.update(p1, g1, torch.ones(3), torch.arange(3))
    rank1.update(p0[:1], g0[:1], torch.zeros(1), torch.zeros(1))  # a padded duplicate of clip 0, frame 0
    rank0.merge_state(rank1)  # the "cat" reduction that DDP sync applies
    assert float(rank0.compute()) == pytest.approx(float(single.compute()), abs=1e-12)
