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


PURE_TRANSLATION = dict(camera_rotation=0.0, camera_zoom=0.0, camera_acceleration=0.0, object_rotation=0.0)


def test_speed_range_sets_the_translation_speed_in_lr_pixels():
    """``speed`` (and ``object_speed_range``): every pixel of a pure translation moves at a speed of
    the range; the rest of the clip (images, object) is the one of the default motion."""
    motion = dict(speed=[8, 24], object_speed_range=[2, 3], **PURE_TRANSLATION)
    ds = SyntheticVideoDataset("val", num_clips=6, num_frames=3, lq_size=(32, 32), seed=5, motion=motion)
    default = SyntheticVideoDataset("val", num_clips=6, num_frames=3, lq_size=(32, 32), seed=5)
    background_speeds = []
    for i in range(6):
        clip, s = ds.make_clip(i), ds[i]
        assert clip.bg is default.make_clip(i).bg and np.array_equal(clip.radii, default.make_clip(i).radii)
        lx, ly = np.meshgrid(np.arange(32), np.arange(32))
        on_fg = clip._fg_radius(1, (lx + 0.5) * 4 - 0.5, (ly + 0.5) * 4 - 0.5) < 1
        speed = s["flow"][2].norm(dim=0).numpy()  # centre frame 1 -> frame 2, in LR pixels
        np.testing.assert_allclose(s["flow"][0].norm(dim=0).numpy(), speed, rtol=1e-5)  # constant speed
        background = speed[~on_fg]
        assert float(background.max() - background.min()) < 1e-4  # one translation
        assert 8 - 1e-4 <= background[0] <= 24 + 1e-4
        background_speeds.append(float(background[0]))
        if on_fg.any():
            assert 2 - 1e-4 <= speed[on_fg].min() and speed[on_fg].max() <= 3 + 1e-4
    assert max(background_speeds) - min(background_speeds) > 2  # drawn per clip


def test_true_flow_aligns_frames_at_large_speeds():
    """Warping by the true flow reproduces the centre frame where valid at 8-24 LR pixels per frame,
    as closely as at the default speeds (same tolerance as above), the background's mirror extension
    included."""
    ds = SyntheticVideoDataset(
        "val", num_clips=8, num_frames=3, lq_size=(64, 64), seed=3, motion={"speed": [8, 24]}
    )
    warped_err, raw_err = [], []
    for i in range(8):
        s = ds[i]
        centre = s["lq"][1]
        for t in (0, 2):
            valid = s["flow_valid"][t]
            assert float(valid.mean()) > 0.2
            warped = flow_warp(s["lq"][t : t + 1], s["flow"][t : t + 1])[0]
            warped_err.append(float(((warped - centre).abs() * valid).sum() / (3 * valid.sum())))
            raw_err.append(float(((s["lq"][t] - centre).abs() * valid).sum() / (3 * valid.sum())))
        assert float(s["flow"][2].norm(dim=0).median()) > 7  # the camera moves more than 7 LR pixels
    assert np.mean(warped_err) < 0.35 * np.mean(raw_err)
    assert max(warped_err) < 0.03  # every pair, not just on average (mean absolute error in [0, 1])


def test_fast_camera_path_stays_inside_the_image_when_it_fits():
    """The start of a fast camera path is chosen so that every frame's footprint lies in the image."""
    ds = SyntheticVideoDataset("train", num_clips=8, num_frames=5, lq_size=(16, 16), motion={"speed": [8, 8]})
    for i in range(8):
        clip = ds.make_clip(i)
        bh, bw = clip.bg.shape[:2]
        corners = np.array([[0, 63, 0, 63], [0, 0, 63, 63], [1, 1, 1, 1]], dtype=np.float64)  # (x, y, 1)
        for tf in clip.bg_tf:
            x, y, _ = np.linalg.inv(tf) @ corners  # frame corners in background image coordinates
            assert x.min() >= 0 and y.min() >= 0 and x.max() <= bw - 1 and y.max() <= bh - 1


def test_evaluation_clips_carry_flows_to_both_neighbours():
    ds = SyntheticVideoDataset("val", num_clips=2, num_frames=4, lq_size=(16, 16), seed=1)
    s, clip = ds[1], ds.make_clip(1)
    assert s["flow_prev"].shape == s["flow_next"].shape == (4, 2, 16, 16)
    assert bool(s["flow_prev"][0].isnan().all()) and bool(s["flow_next"][3].isnan().all())
    for t in range(4):
        flows, _ = clip.flow_to(t, 4)
        if t > 0:
            np.testing.assert_array_equal(s["flow_prev"][t].numpy(), flows[t - 1])
        if t < 3:
            np.testing.assert_array_equal(s["flow_next"][t].numpy(), flows[t + 1])
    assert "flow_prev" not in SyntheticVideoDataset("train", num_frames=3, lq_size=(16, 16))[0]


def test_bad_speed_range_names_the_key():
    with pytest.raises(ValueError, match=r"motion.speed must be \[lo, hi\]"):
        SyntheticVideoDataset("train", motion={"speed": [5, 2]})
    with pytest.raises(ValueError, match="motion.object_speed_range"):
        SyntheticVideoDataset("train", motion={"object_speed_range": [1]})


def test_gt_size_sets_square_frames_like_the_real_datasets():
    ds = SyntheticVideoDataset("train", num_clips=2, num_frames=3, lq_size=(24, 24), gt_size=64, seed=3)
    sample = ds[0]
    assert sample["lq"].shape == (3, 3, 16, 16) and sample["gt"].shape == (3, 3, 64, 64)
    with pytest.raises(ValueError, match="gt_size=66 is not a multiple of scale=4"):
        SyntheticVideoDataset("train", gt_size=66)


def test_evaluation_clips_carry_the_flows_of_every_window_centre():
    ds = SyntheticVideoDataset(
        "val", num_clips=2, num_frames=5, lq_size=(16, 16), seed=1, motion={"speed": [2, 6]}
    )
    s, clip = ds[1], ds.make_clip(1)
    pairs = s["flow_pairs"]
    assert pairs.shape == (5, 5, 2, 16, 16) and pairs.dtype == torch.float32
    for c in range(5):
        np.testing.assert_array_equal(pairs[c].numpy(), clip.flow_to(c, 4)[0])
        assert float(pairs[c, c].abs().max()) < 1e-6  # zero up to the rounding of the layer transforms
    np.testing.assert_array_equal(pairs[2].numpy(), s["flow"].numpy())  # the centre's: the window's flow
    np.testing.assert_array_equal(pairs[3, 2].numpy(), s["flow_prev"][3].numpy())
    np.testing.assert_array_equal(pairs[3, 4].numpy(), s["flow_next"][3].numpy())
    assert float(pairs[0, 4].norm(dim=0).mean()) > 4  # four frames apart at >= 2 LR px per frame
    # the other keys are those of a dataset without them; training samples never carry them
    lean = SyntheticVideoDataset(
        "val", num_clips=2, num_frames=5, lq_size=(16, 16), seed=1, motion={"speed": [2, 6]}, flow_pairs=False
    )[1]
    assert set(s) - set(lean) == {"flow_pairs"}
    for key, value in lean.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(s[key], value, rtol=0, atol=0, equal_nan=True)
        else:
            assert s[key] == value, key
    assert "flow_pairs" not in SyntheticVideoDataset("train", num_frames=3, lq_size=(16, 16))[0]
