"""LAM (Gu & Dong 2021): the Gini / diffusion index, the blur path against OpenCV, the path integral's
completeness, the analytic attribution of a linear network, the temporal shares of video networks and the
pictures. The cross-check against the official code is scripts/crosscheck_lam.py (docs/crosscheck.md)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from vsrlab.analysis.lam import (
    blur_path,
    diffusion_index,
    filter_reflect101,
    gaussian_kernel,
    gini_index,
    gradient_detector,
    local_attribution_map,
    share_by_distance,
)
from vsrlab.analysis.lam_figures import kde_density, save_lam_pictures


def small_sr(seed: int = 0, scale: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 1, 1), nn.Tanh(), nn.Conv2d(8, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale)
    ).eval()


def lr_image(size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g)


class OneFrame(nn.Module):
    """A sliding-window network that reads only input frame ``index`` (through an image network)."""

    def __init__(self, image_net: nn.Module, index: int) -> None:
        super().__init__()
        self.image_net, self.index = image_net, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_net(x[:, self.index])


class PerFrame(nn.Module):
    """A 'recurrent' network whose output frame t depends on input frame t only."""

    def __init__(self, image_net: nn.Module) -> None:
        super().__init__()
        self.image_net = image_net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return self.image_net(x.flatten(0, 1)).unflatten(0, (b, t))


def test_gini_uniform_and_one_hot():
    assert gini_index(np.full(100, 0.37)) == pytest.approx(0.0, abs=1e-6)
    for n in (2, 10, 257):
        one_hot = np.zeros(n)
        one_hot[n // 3] = 1.0
        # the reference adds 1e-7 to every value: (n - 1) / (n (1 + n 1e-7)), -> (n - 1) / n
        assert gini_index(one_hot) == pytest.approx((n - 1) / (n * (1 + n * 1e-7)), abs=1e-12)
        assert gini_index(one_hot) == pytest.approx((n - 1) / n, abs=n * 1e-7)
    assert diffusion_index(np.full((8, 8), 2.0)) == pytest.approx(100.0, abs=1e-4)
    # negative values are shifted by the minimum: [-1, 1] -> [0, 2], the one-hot of 2
    assert gini_index(np.array([-1.0, 1.0])) == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("size,sigma", [(9, 1.2), (5, 0.6), (8, 1.5)])
def test_filter_matches_opencv_reflect101(size, sigma):
    rng = np.random.default_rng(size)
    image = rng.random((13, 17, 3)).astype(np.float32)
    kernel = gaussian_kernel(size, sigma) - gaussian_kernel(size, sigma / 2)  # signed, as the path derivative
    expected = cv2.filter2D(image, -1, kernel)
    ours = filter_reflect101(torch.from_numpy(image).permute(2, 0, 1), kernel).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, expected, atol=2e-6)


def test_gaussian_kernel_grid_and_path_ends():
    k = gaussian_kernel(9, 1.2)
    assert k.shape == (9, 9) and k.sum() == pytest.approx(1.0) and k[4, 4] == k.max()
    # sigma 0 (+1e-5) is a delta: the last path image is the input itself
    np.testing.assert_allclose(gaussian_kernel(9, 0.0)[4, 4], 1.0)
    x = lr_image(12)[0]
    path, derivative = blur_path(x, sigma=1.2, fold=10, kernel_size=9)
    assert path.shape == derivative.shape == (10, 3, 12, 12)
    torch.testing.assert_close(path[-1], x, rtol=0, atol=1e-6)
    sigma_1 = np.linspace(1.2, 0, 11)[1]
    torch.testing.assert_close(path[0], filter_reflect101(x, gaussian_kernel(9, sigma_1)), rtol=0, atol=1e-6)
    # the derivatives integrate the path: mean(derivative) = input - baseline (sigma 1.2)
    baseline = filter_reflect101(x, gaussian_kernel(9, 1.2))
    torch.testing.assert_close(derivative.mean(0), x - baseline, rtol=0, atol=1e-5)


def test_lam_integral_is_complete():
    """sum of attributions -> D(F(input)) - D(F(baseline)) as fold grows (right Riemann sum)."""
    net, x = small_sr(1), lr_image(16)
    row, col, window = 10, 12, 8
    baseline = filter_reflect101(x, gaussian_kernel(9, 1.2))
    with torch.no_grad():
        gap = float(
            gradient_detector(net(x), row, col, window) - gradient_detector(net(baseline), row, col, window)
        )
    errors = []
    for fold in (5, 40, 200):
        result = local_attribution_map(net, x, row, col, window, fold=fold, steps_per_batch=50)
        errors.append(abs(float(result.attribution.double().sum()) - gap) / abs(gap))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01


def test_linear_network_gets_the_analytic_attribution():
    """For a linear network and the linear (window sum) detector, integrated gradients along any path
    are exact: gradient x (input - baseline)."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 12, 5, 1, 2), nn.PixelShuffle(2)).eval()
    x = lr_image(14, seed=2)
    row, col, window = 6, 9, 10
    probe = torch.zeros_like(x, requires_grad=True)
    net(probe)[:, :, row : row + window, col : col + window].sum().backward()
    baseline = filter_reflect101(x[0], gaussian_kernel(9, 1.2))
    expected = probe.grad[0] * (x[0] - baseline)
    result = local_attribution_map(net, x, row, col, window, fold=7, detector="sum")
    torch.testing.assert_close(result.attribution, expected, rtol=0, atol=1e-6)
    summed = expected.sum(0).abs()
    torch.testing.assert_close(result.attribution_map, summed / summed.max(), rtol=0, atol=1e-5)
    assert result.frame_shares.tolist() == [1.0]


def test_sliding_window_network_reading_one_frame_puts_all_share_on_it():
    image_net = small_sr(2)
    clip = torch.rand(1, 5, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    video = local_attribution_map(OneFrame(image_net, 3), clip, 8, 8, 8, fold=6, steps_per_batch=6)
    assert video.attribution_map.shape == (5, 16, 16)
    assert video.frame_shares.tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0, 0.0], abs=0)
    assert float(video.attribution_map[[0, 1, 2, 4]].abs().max()) == 0.0
    # frame 3's map is the image network's map of that frame; the joint normalisation keeps it
    image = local_attribution_map(image_net, clip[:, 3], 8, 8, 8, fold=6)
    torch.testing.assert_close(video.attribution_map[3], image.attribution_map, rtol=0, atol=1e-6)
    assert video.diffusion_index < image.diffusion_index  # four empty frames concentrate the joint map
    assert share_by_distance(video.frame_shares, centre=2) == pytest.approx({0: 0.0, 1: 1.0, 2: 0.0})


def test_recurrent_network_output_frame_selects_the_evidence():
    clip = torch.rand(1, 4, 3, 12, 12, generator=torch.Generator().manual_seed(6))
    net = PerFrame(small_sr(4))
    default = local_attribution_map(net, clip, 4, 4, 6, fold=4)
    assert default.frame == 2 and default.frame_shares.tolist() == [0.0, 0.0, 1.0, 0.0]
    first = local_attribution_map(net, clip, 4, 4, 6, fold=4, frame=0)
    assert first.frame == 0 and first.frame_shares.tolist() == [1.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(first.output, net(clip)[0, 0].detach(), rtol=0, atol=1e-6)


def test_bad_requests_name_the_value():
    net, x = small_sr(), lr_image(8)
    with pytest.raises(ValueError, match="row=10, col=0 is outside"):
        local_attribution_map(net, x, 10, 0, 8, fold=2)
    with pytest.raises(ValueError, match="lq must be"):
        local_attribution_map(net, x[0], 0, 0, 4, fold=2)
    with pytest.raises(ValueError, match="frame=1 given"):
        local_attribution_map(OneFrame(net, 0), x[:, None], 0, 0, 4, fold=2, frame=1)
    with pytest.raises(ValueError, match="detector"):
        local_attribution_map(net, x, 0, 0, 4, fold=2, detector="max")


def test_kde_density_equals_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    weights = rng.random((11, 9)) ** 4
    ys, xs = np.mgrid[0:11, 0:9]
    points = np.vstack([xs.ravel(), ys.ravel()])
    density = stats.gaussian_kde(points, weights=weights.ravel())(points).reshape(11, 9)
    np.testing.assert_allclose(kde_density(weights), density / density.max(), atol=1e-9)


def test_pictures(tmp_path):
    clip = torch.rand(1, 3, 3, 12, 12, generator=torch.Generator().manual_seed(7))
    result = local_attribution_map(OneFrame(small_sr(), 1), clip, 4, 6, 8, fold=3)
    lq = (clip[0].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    paths = save_lam_pictures(result, lq, tmp_path)
    assert [p.name for p in paths] == ["lam.png", "lam_frames.png"]
    lam = cv2.imread(str(paths[0]))
    assert lam.shape == (24, 4 * 24 + 3 * 4, 3)
    frames = cv2.imread(str(paths[1]))
    assert frames.shape == (24, 3 * 24 + 2 * 4, 3)
    # the window outline is drawn in red on the output panel (BGR on disk)
    assert tuple(lam[4, 6]) == (0, 0, 255)
