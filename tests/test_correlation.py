"""The local correlation (cost volume) and the sliding-window network's offset-predictor options."""

from __future__ import annotations

import pytest
import torch

from vsrlab.archs import SlidingWindowVSR
from vsrlab.ops import local_correlation, pyramid_correlation


def test_correlation_is_the_channel_mean_of_shifted_products_and_peaks_at_the_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 256, 12, 12, generator=g)  # many channels: a(x).a(x) beats a(x).a(y) everywhere
    corr = local_correlation(a, a.roll(shifts=(1, -2), dims=(2, 3)), radius=3)
    assert corr.shape == (2, 49, 12, 12)
    # b(x + d) = a(x) for d = (dy, dx) = (1, -2): channel (1 + 3) * 7 + (-2 + 3) = 29, away from the borders
    assert torch.all(corr[:, :, 3:-3, 3:-3].argmax(dim=1) == 29)
    b = torch.randn(2, 256, 12, 12, generator=g)
    dy, dx = -2, 1
    expected = (a[:, :, 4, 5] * b[:, :, 4 + dy, 5 + dx]).mean(dim=1)
    torch.testing.assert_close(local_correlation(a, b, 3)[:, (dy + 3) * 7 + dx + 3, 4, 5], expected)
    assert float(local_correlation(a, b, 3)[0, 0, 0, 0]) == 0.0  # b is zero outside the frame
    with pytest.raises(ValueError, match="same shape"):
        local_correlation(a, b[:, :8], 1)


def test_pyramid_correlation_stacks_the_levels_at_full_size():
    a, b = torch.rand(1, 4, 10, 9), torch.rand(1, 4, 10, 9)
    out = pyramid_correlation(a, b, radius=1, levels=3)
    assert out.shape == (1, 27, 10, 9)
    torch.testing.assert_close(out[:, :9], local_correlation(a, b, 1))


def test_offset_predictor_options_add_exactly_their_layers():
    kw = {"num_feat": 8, "num_frame": 3, "deformable_groups": 1, "num_offsets": 1, "modulated": False}
    base = SlidingWindowVSR(**kw)
    assert set(base.state_dict()) == set(SlidingWindowVSR(**kw, offset_levels=1).state_dict())
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    f = 8
    levels = SlidingWindowVSR(**kw, offset_levels=3)
    assert count(levels) - count(base) == 2 * (9 * f * f + f) + 2 * (18 * f * f + f)
    cost = SlidingWindowVSR(**kw, offset_levels=3, cost_volume_radius=2)
    assert count(cost) - count(levels) == 3 * 25 * f * 9  # offset_conv1 takes 3 levels x 5 x 5 correlations
    x = torch.rand(1, 3, 3, 20, 12)
    assert cost(x).shape == (1, 3, 80, 48)
    with pytest.raises(ValueError, match="offset_levels must be >= 1"):
        SlidingWindowVSR(**kw, offset_levels=0)
