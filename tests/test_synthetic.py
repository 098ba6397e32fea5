"""The embedded synthetic dataset: determinism, degradation, and its true optical flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.ops import flow_warp
from vsrlab.ops.resize import matlab_imresize
from vsrlab.utils.images import to_uint8_hwc


@pytest.fixture(scope="module")
def train_set() -> SyntheticVideoDataset:
    return SyntheticVideoDataset("train", num_clips=16, num_frames=5, lq_size=(24, 24), seed=3)


def test_sample_layout(train_set):
    s = train_set[0]
    assert s["lq"].shape == (5, 3, 24, 24) and s["gt"].shape == (5, 3, 96, 96)
    assert s["flow"].shape == (5, 2, 24, 24) and s["flow_valid"].shape == (5, 1, 24, 24)
    assert s["lq"].dtype == torch.float32 and 0 <= float(s["lq"].min()) and float(s["gt"].max()) <= 1
    assert s["key"] == "train_00000" and s["clip_index"] == 0
    assert float(s["flow"][2].abs().max()) < 1e-6 and bool(s["flow_valid"][2].all())


def test_deterministic_per_index_and_split(train_set):
    a, b = (
        train_set[5],
        SyntheticVideoDataset("train", num_clips=16, num_frames=5, lq_size=(24, 24), seed=3)[5],
    )
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["flow"], b["flow"])
    assert not torch.equal(train_set[6]["gt"], a["gt"])
    assert not torch.equal(
        SyntheticVideoDataset("train", num_frames=5, lq_size=(24, 24), seed=4)[5]["gt"], a["gt"]
    )
    assert len(train_set[10**6]["key"]) > 0  # an endless stream: any index is a clip
    val = SyntheticVideoDataset("val", num_clips=16, num_frames=5, lq_size=(24, 24), seed=3)
    assert not torch.equal(val[5]["gt"], a["gt"])  # splits never share a clip


def test_lr_is_bi_degradation_of_gt(train_set):
    s = train_set[1]
    for t in range(5):
        expected = matlab_imresize(to_uint8_hwc(s["gt"][t]), 0.25)
        np.testing.assert_array_equal(to_uint8_hwc(s["lq"][t]), expected)


def test_true_flow_aligns_neighbours_to_centre(train_set):
    """Warping each neighbour by the true flow brings it much closer to the centre frame."""
    warped_err, raw_err = [], []
    for i in range(8):
        s = train_set[i]
        centre = s["lq"][2]
        for t in (0, 1, 3, 4):
            valid = s["flow_valid"][t]
            warped = flow_warp(s["lq"][t : t + 1], s["flow"][t : t + 1])[0]
            warped_err.append(float(((warped - centre).abs() * valid).sum() / (3 * valid.sum())))
            raw_err.append(float(((s["lq"][t] - centre).abs() * valid).sum() / (3 * valid.sum())))
    assert np.mean(warped_err) < 0.35 * np.mean(raw_err)
    assert max(float(train_set[i]["flow"].abs().max()) for i in range(8)) > 1.0  # real, multi-pixel motion


def test_occlusions_exist_and_hr_flow_is_exact_on_translation():
    """With pure translation of both layers, HR warping by the true flow is exact where visible."""
    motion = dict(camera_rotation=0.0, camera_zoom=0.0, camera_acceleration=0.0, object_rotation=0.0)
    ds = SyntheticVideoDataset("val", num_clips=4, num_frames=3, lq_size=(16, 16), scale=1, motion=motion)
    clip = ds.make_clip(0)
    for t in (0, 2):
        m = clip.bg_tf[t] @ np.linalg.inv(clip.bg_tf[1])
        np.testing.assert_allclose(m[:2, :2], np.eye(2), atol=1e-12)  # translation only
    s = ds[0]
    assert float(s["flow_valid"][0].mean()) < 1.0  # the moving object hides part of the background


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="unknown scikit-image sample image 'nope'"):
        SyntheticVideoDataset("train", images=["nope"])
    with pytest.raises(ValueError, match="split"):
        SyntheticVideoDataset("training")
