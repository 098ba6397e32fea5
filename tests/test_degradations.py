"""MATLAB-compatible bicubic resize (BI degradation and the bicubic baseline) and the other degradations:
BD, area (block mean) and bicubic_noaa (bicubic without antialiasing)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vsrlab.data.degradations import (
    DEGRADATIONS,
    area_downsample,
    bicubic_downsample,
    degradation_name,
    degrade,
)
from vsrlab.ops.resize import matlab_imresize, matlab_imresize_tensor, resize_matrix

# Outputs of BasicSR's port of MATLAB imresize (basicsr/utils/matlab_functions.py, float32) on the
# inputs below; an independent implementation of the same MATLAB algorithm.
RAMP = np.arange(48, dtype=np.float64).reshape(6, 8) ** 1.5 / 48**1.5
RAMP_HALF = np.array(
    [
        [0.0311983, 0.04990553, 0.07330713, 0.10052173],
        [0.27964833, 0.32238612, 0.36665419, 0.41312495],
        [0.67353576, 0.73014927, 0.78781438, 0.84738606],
    ]
)
SMALL = np.array([[0.0, 1.0, 0.0], [1.0, 0.5, 0.25], [0.2, 0.9, 0.4]])
SMALL_X2 = np.array(
    [
        [-0.20068359, 0.1630249, 0.89044189, 0.90966797, 0.22070312, -0.1237793],
        [0.15932617, 0.37712708, 0.81272894, 0.76498419, 0.23389284, -0.03165283],
        [0.87934566, 0.80533141, 0.65730286, 0.47561648, 0.2602722, 0.15260009],
        [0.9417237, 0.84015197, 0.63700873, 0.47027591, 0.3399536, 0.27479246],
        [0.34645998, 0.48158875, 0.75184631, 0.7489624, 0.47293702, 0.33492437],
        [0.04882813, 0.30230713, 0.80926508, 0.8883056, 0.53942871, 0.36499023],
    ]
)


def test_downscale_matches_matlab_port():
    np.testing.assert_allclose(matlab_imresize(RAMP, 0.5), RAMP_HALF, atol=1e-6)


def test_upscale_matches_matlab_port_and_overshoots_like_cubic():
    out = matlab_imresize(SMALL[..., None], 2)[..., 0]
    np.testing.assert_allclose(out, SMALL_X2, atol=1e-6)
    assert out.min() < 0  # floats are not clipped


def test_output_size_is_ceil_and_dtype_is_kept():
    img = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    out = matlab_imresize(img, 0.25)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert matlab_imresize(img.astype(np.float32) / 255, 4).dtype == np.float32


def test_uint8_is_rounded_float_result():
    img = np.random.default_rng(1).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    as_float = matlab_imresize(img.astype(np.float64), 0.25)
    np.testing.assert_array_equal(matlab_imresize(img, 0.25), np.clip(np.floor(as_float + 0.5), 0, 255))


def test_constant_and_linear_images_are_preserved():
    np.testing.assert_allclose(matlab_imresize(np.full((12, 16), 0.3), 0.25), 0.3, atol=1e-12)
    # the cubic kernel reproduces linear functions; away from the mirrored borders they stay exact
    ramp = np.tile(np.arange(40, dtype=np.float64), (8, 1))
    up = matlab_imresize(ramp, 4)
    x = (np.arange(160) + 0.5) / 4 - 0.5
    np.testing.assert_allclose(up[:, 8:-8], np.tile(x[8:-8], (32, 1)), atol=1e-10)


def test_resize_matrix_rows_sum_to_one():
    for n_in, n_out, s in [(37, 10, 0.25), (10, 40, 4.0), (9, 3, 1 / 3)]:
        m = resize_matrix(n_in, n_out, s)
        assert m.shape == (n_out, n_in)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)


def test_tensor_version_equals_numpy_version():
    img = np.random.default_rng(2).random((20, 24, 3))
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    out = matlab_imresize_tensor(x, 0.25)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, matlab_imresize(img, 0.25), atol=1e-12)


def test_bicubic_downsample_frames_and_errors():
    frames = np.random.default_rng(3).integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
    out = bicubic_downsample(frames, 4)
    assert out.shape == (3, 4, 5, 3)
    np.testing.assert_array_equal(out[1], matlab_imresize(frames[1], 0.25))
    with pytest.raises(ValueError, match="not divisible by the scale 4"):
        bicubic_downsample(frames[:, :15], 4)
    with pytest.raises(ValueError, match="numpy array"):
        matlab_imresize(torch.zeros(4, 4), 0.5)


# --- the aliasing degradations: area (block mean) and bicubic_noaa (bicubic without antialiasing)


def stripes(freq: float = 26 / 128, size: int = 128) -> np.ndarray:
    """``(16, size, 3)`` uint8 vertical stripes ``128 + 100 cos(2 pi freq x)`` (cycles per HR pixel)."""
    row = np.round(128 + 100 * np.cos(2 * np.pi * freq * np.arange(size)))
    return np.repeat(row[None, :, None], 16, 0).repeat(3, 2).astype(np.uint8)


def test_area_is_the_block_mean_rounded_once():
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (2, 12, 16, 3), dtype=np.uint8)
    out = area_downsample(frames, 4)
    assert out.shape == (2, 3, 4, 3) and out.dtype == np.uint8
    for t, y, x, c in np.ndindex(*out.shape):
        block = frames[t, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4, c].astype(np.int64)
        assert out[t, y, x, c] == (2 * int(block.sum()) + 16) // 32  # mean of 16, half up, in integers
    # a constant image stays that constant, every value
    for v in (0, 1, 127, 254, 255):
        np.testing.assert_array_equal(area_downsample(np.full((8, 12, 3), v, np.uint8), 4), v)
    # OpenCV's INTER_AREA computes the same means (float input: no fixed-point rounding of its own)
    means = cv2.resize(frames[0].astype(np.float64), (4, 3), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[0], np.floor(means + 0.5))


def test_bicubic_noaa_samples_the_unwidened_kernel():
    img = np.random.default_rng(5).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    out = degrade(img, 4, "bicubic_noaa")
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, matlab_imresize(img, 0.25, antialiasing=False))
    # away from the borders each LR pixel is the Keys cubic through the 4 HR pixels around 4x + 1.5
    w = np.array([-0.0625, 0.5625, 0.5625, -0.0625])
    ref = np.einsum("i,j,ijc->c", w, w, img[4:8, 8:12].astype(np.float64))
    np.testing.assert_array_equal(out[1, 2], np.clip(np.floor(ref + 0.5), 0, 255))
    np.testing.assert_array_equal(degrade(np.full((8, 8, 3), 77, np.uint8), 4, "bicubic_noaa"), 77)


def test_bicubic_noaa_aliases_a_pattern_that_bi_suppresses():
    img = stripes()  # 0.8125 cycles per LR pixel: above the LR Nyquist limit (0.5)
    lr = {name: degrade(img, 4, name)[2, :, 0].astype(np.float64) for name in ("BI", "bicubic_noaa", "area")}
    assert lr["BI"][4:-4].std() < 3  # BI's widened kernel filters it out
    assert lr["bicubic_noaa"][4:-4].std() > 60  # sampled without filtering: nearly full contrast
    assert 10 < lr["area"][4:-4].std() < 30  # the box attenuates it, partly
    for name in ("bicubic_noaa", "area"):  # ... and what passes comes back at the alias, 1 - 0.8125
        spectrum = np.abs(np.fft.rfft(lr[name] - lr[name].mean()))
        assert int(np.argmax(spectrum)) == 6  # 6/32 = 0.1875 cycles per LR pixel
    assert np.abs(lr["bicubic_noaa"] - lr["BI"]).max() > 80


@pytest.mark.parametrize("name", ["BI", "BD", "area", "bicubic_noaa"])
def test_every_degradation_by_name_shapes_and_errors(name):
    frames = np.random.default_rng(6).integers(0, 256, (2, 3, 16, 20, 3), dtype=np.uint8)
    out = degrade(frames, 4, name.lower())  # any case
    assert out.shape == (2, 3, 4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, DEGRADATIONS[name](frames, 4))
    assert degradation_name(name.upper()) == name
    with pytest.raises(ValueError, match="not divisible by the scale 4"):
        degrade(frames[..., :15, :], 4, name)


def test_unknown_degradation_names_the_known_ones():
    known = r"\['BD', 'BI', 'area', 'bicubic_noaa'\]"
    with pytest.raises(ValueError, match=f"degradation must be one of {known}, got 'box'"):
        degrade(np.zeros((8, 8, 3), np.uint8), 4, "box")


def test_tensor_resize_cached_under_inference_mode_still_serves_autograd():
    from vsrlab.ops.resize import _resize_matrix_tensor

    _resize_matrix_tensor.cache_clear()
    with torch.inference_mode():
        matlab_imresize_tensor(torch.rand(1, 3, 11, 13), 4)  # fills the cache inside an evaluation
    x = torch.rand(1, 3, 11, 13, requires_grad=True)
    matlab_imresize_tensor(x, 4).sum().backward()  # raised "Inference tensors cannot be saved for backward"
    # each input pixel's weights sum to 1 along each axis times the output/input ratio: 4 x 4
    torch.testing.assert_close(x.grad, torch.full_like(x, 16.0), rtol=0, atol=1e-4)
