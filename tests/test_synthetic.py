"""The embedded synthetic dataset: determinism, degradation, and its true optical flow."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
import torch

from vsrlab.data.degradations import degrade
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.data.synthetic_options import add_noise, add_occlusions, occlusion_counts
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


# --- options (vsrlab.data.synthetic_options): defaults bit for bit, degradations, noise, occlusions,
# motion presets and clips stratified by speed


def summary(sample: dict) -> dict:
    """What the reference below records of a sample: SHA-256 (16 hex digits) of the uint8 LR and GT
    frames and of the fingerprint, sum and sum of squares of every other tensor, the other values."""
    out = {}
    for key, value in sample.items():
        if key in ("lq", "gt"):
            frames = (value * 255).round().to(torch.uint8).numpy()
            out[key] = hashlib.sha256(frames.tobytes()).hexdigest()[:16]
        elif isinstance(value, torch.Tensor):
            v = torch.nan_to_num(value.double())
            out[key] = [round(float(v.sum()), 4), round(float((v * v).sum()), 4)]
        elif key == "fingerprint":
            out[key] = hashlib.sha256(value.encode()).hexdigest()[:16]
        else:
            out[key] = value
    return out


# computed with the code before the options existed (git 251b113), so they pin the defaults bit for bit
DEFAULT_SAMPLES = [
    (
        dict(split="train", num_frames=5, lq_size=(16, 16), seed=3),
        7,
        {"clip_index": 7, "flow": [215.5685, 1920.5909], "flow_valid": [1109.0, 1109.0],
         "gt": "d8ae0f4a17f892ae", "key": "train_00007", "lq": "0a23daf1bf3e8e3b"},
    ),
    (
        dict(split="val", num_frames=4, lq_size=(12, 16)),
        3,
        {"clip_index": 3, "fingerprint": "de0d2d2317b62d87", "flow": [440.1038, 3513.7806],
         "flow_next": [-635.3239, 1793.7483], "flow_pairs": [-84.0169, 23888.4771],
         "flow_prev": [622.3508, 1780.4807], "flow_valid": [614.0, 614.0], "gt": "ccc2d167de19c9a1",
         "key": "val_00003", "lq": "dac63f85e8a33d87"},
    ),
    (
        dict(split="test", num_frames=3, lq_size=(12, 12), motion={"speed": [2, 6]}),
        1,
        {"clip_index": 1, "fingerprint": "35a4c9fb98171adc", "flow": [-17.3073, 3167.2607],
         "flow_next": [-732.2484, 2953.0349], "flow_pairs": [29.0459, 17772.1027],
         "flow_prev": [742.5799, 3135.0721], "flow_valid": [324.0, 324.0], "gt": "ed55489ffb25b645",
         "key": "test_00001", "lq": "b0a68b4f53c0afc4"},
    ),
]  # fmt: skip


@pytest.mark.parametrize("kwargs, index, expected", DEFAULT_SAMPLES)
def test_default_options_leave_every_sample_as_it_was(kwargs, index, expected):
    assert summary(SyntheticVideoDataset(**kwargs)[index]) == expected
    # the options at their defaults, given explicitly: the same sample
    explicit = dict(degradation="bi", noise_sigma=0, occlusions=False, speeds=None, num_clips=None)
    assert summary(SyntheticVideoDataset(**kwargs, **explicit)[index]) == expected
    assert len(SyntheticVideoDataset(**kwargs)) == 1000


@pytest.mark.parametrize("degradation", ["BD", "area", "bicubic_noaa"])
def test_degradation_option_makes_the_lr_frames(degradation):
    ds = SyntheticVideoDataset("val", num_clips=2, num_frames=3, lq_size=(16, 16), degradation=degradation)
    s, bi = ds[1], SyntheticVideoDataset("val", num_clips=2, num_frames=3, lq_size=(16, 16))[1]
    gt = np.stack([to_uint8_hwc(f) for f in s["gt"]])
    np.testing.assert_array_equal(np.stack([to_uint8_hwc(f) for f in s["lq"]]), degrade(gt, 4, degradation))
    assert torch.equal(s["gt"], bi["gt"]) and torch.equal(s["flow"], bi["flow"])  # the same clip
    assert json.loads(s["fingerprint"])["degradation"] == degradation
    with pytest.raises(ValueError, match="degradation must be one of"):
        SyntheticVideoDataset("val", degradation="box")


def test_add_noise_statistics_per_frame_and_reproducible():
    flat = np.full((4, 64, 64, 3), 128, np.uint8)
    noisy = add_noise(flat, 10.0, (0, 2, 5))
    assert noisy.dtype == np.uint8
    diff = noisy.astype(np.float64) - 128
    for t in range(4):
        assert abs(diff[t].std() - 10) < 0.35 and abs(diff[t].mean()) < 0.35
        assert np.array_equal(diff[t], np.round(diff[t]))  # quantised as the LR frames are
    assert not np.array_equal(noisy[0], noisy[1])  # independent per frame ...
    assert abs(np.corrcoef(diff[0].ravel(), diff[1].ravel())[0, 1]) < 0.05
    np.testing.assert_array_equal(add_noise(flat, 10.0, (0, 2, 5)), noisy)  # ... and a function of the key
    np.testing.assert_array_equal(add_noise(flat[:2], 10.0, (0, 2, 5)), noisy[:2])  # frame t: its own stream
    assert not np.array_equal(add_noise(flat, 10.0, (0, 2, 6)), noisy)
    assert add_noise(flat, 0.0, (0, 2, 5)) is flat
    clipped = add_noise(np.full((1, 32, 32, 3), 250, np.uint8), 20.0, (0, 0, 0))
    assert clipped.max() == 255  # clipped, not wrapped
    with pytest.raises(ValueError, match=r"noise_sigma must be in \[0, 255\]"):
        SyntheticVideoDataset("val", noise_sigma=-1)


def test_noise_option_adds_noise_to_lr_only():
    kwargs = dict(num_clips=2, num_frames=5, lq_size=(32, 32), degradation="area")
    clean, noisy = (
        SyntheticVideoDataset("val", **kwargs)[0],
        SyntheticVideoDataset("val", noise_sigma=10, **kwargs)[0],
    )
    for key in ("gt", "flow", "flow_valid", "flow_pairs"):
        assert torch.equal(clean[key], noisy[key]), key
    diff = (noisy["lq"] - clean["lq"]) * 255
    stds = [float(d.std()) for d in diff]
    assert all(9 < s < 11 for s in stds), stds  # (a few pixels clip at 0 or 255)
    assert not torch.equal(diff[0], diff[1])
    assert torch.equal(SyntheticVideoDataset("val", noise_sigma=10, **kwargs)[0]["lq"], noisy["lq"])
    assert json.loads(noisy["fingerprint"])["noise_sigma"] == 10


def test_occlusions_are_flat_rectangles_on_the_lr_frames_only():
    kwargs = dict(num_clips=2, num_frames=5, lq_size=(32, 32), seed=2)
    clean, occluded = (
        SyntheticVideoDataset("val", **kwargs)[1],
        SyntheticVideoDataset("val", occlusions=True, **kwargs)[1],
    )
    for key in ("gt", "flow", "flow_valid", "flow_prev", "flow_next", "flow_pairs"):
        torch.testing.assert_close(clean[key], occluded[key], rtol=0, atol=0, equal_nan=True)
    masks = []
    for t in range(5):
        changed = (occluded["lq"][t] != clean["lq"][t]).any(0).numpy()
        assert 0.005 < changed.mean() < 0.4
        colours = {tuple(c) for c in (occluded["lq"][t].permute(1, 2, 0).numpy()[changed] * 255).round()}
        assert 1 <= len(colours) <= 3  # 1-3 flat rectangles (overlaps hide some)
        masks.append(changed)
    assert not all(np.array_equal(masks[0], m) for m in masks[1:])  # independent per frame
    assert json.loads(occluded["fingerprint"])["occlusions"] == [1, 3]
    # counts: [lo, hi] per frame, on a frame nothing else touches
    frames = add_occlusions(np.zeros((50, 40, 40, 3), np.uint8), (2, 2), (0, 0, 0))
    counts = [len({tuple(c) for c in f.reshape(-1, 3)} - {(0, 0, 0)}) for f in frames]
    assert max(counts) == 2 and np.mean(counts) > 1.5
    assert occlusion_counts(False) is None and occlusion_counts([0, 0]) is None
    with pytest.raises(ValueError, match=r"occlusions must be true, false or \[lo, hi\]"):
        SyntheticVideoDataset("val", occlusions=[3, 1])


SPEEDS = [0, 0.5, 1, 2, 4, 8, 12]


def test_clips_stratified_by_speed_move_at_their_speed():
    ds = SyntheticVideoDataset(
        "test",
        num_frames=5,
        lq_size=(24, 24),
        motion={"preset": "translation"},
        speeds=SPEEDS,
        clips_per_speed=2,
    )
    assert len(ds) == 14
    names = [ds.clip_name(i) for i in range(14)]
    assert names[:3] == ["test_speed0_00000", "test_speed0_00001", "test_speed0.5_00002"]
    assert Counter(n.split("_")[1] for n in names) == {f"speed{v:g}": 2 for v in SPEEDS}
    for i in range(14):
        s, v = ds[i], SPEEDS[i // 2]
        assert s["key"] == names[i]
        # every pixel (camera and object) moves at exactly the clip's speed, between any two frames
        motion = torch.cat([s["flow_prev"][1:], s["flow_next"][:-1]]).norm(dim=1)
        assert float((motion - v).abs().max()) < 1e-3, (i, v)
        for t in range(5):
            assert float((s["flow"][t].norm(dim=0) - abs(t - 2) * v).abs().max()) < 1e-3
    assert ds.strata.speed(14) == 0  # streaming past the end starts over
    with pytest.raises(ValueError, match="num_clips=10 but speeds x clips_per_speed make 14"):
        SyntheticVideoDataset("test", num_clips=10, speeds=SPEEDS, clips_per_speed=2)
    with pytest.raises(ValueError, match="speeds must be a non-empty list"):
        SyntheticVideoDataset("test", speeds=[])


def test_translation_preset_and_clips_without_the_object():
    preset = SyntheticVideoDataset(
        "val", num_clips=2, num_frames=3, lq_size=(16, 16), motion={"preset": "translation"}
    )
    spelled = SyntheticVideoDataset(
        "val", num_clips=2, num_frames=3, lq_size=(16, 16), motion=PURE_TRANSLATION
    )
    assert preset.motion == spelled.motion and torch.equal(preset[1]["gt"], spelled[1]["gt"])
    with pytest.raises(ValueError, match="motion.preset must be one of"):
        SyntheticVideoDataset("val", motion={"preset": "zoom"})
    motion = {"preset": "translation", "foreground": False}
    alone = SyntheticVideoDataset("val", num_clips=2, num_frames=3, lq_size=(16, 16), motion=motion)[1]
    flow = alone["flow"][0]  # the background's translation everywhere
    assert float((flow - flow[:, :1, :1]).abs().max()) < 1e-4
    clip = SyntheticVideoDataset("val", num_clips=2, num_frames=3, lq_size=(16, 16), motion=motion).make_clip(
        1
    )
    assert np.array_equal(clip.bg_tf[0], preset.make_clip(1).bg_tf[0])  # the same camera
