"""Architectures: shapes, parameter counts, gradients, the bicubic baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrlab.archs import Bicubic, SlidingWindowVSR
from vsrlab.ops import DeformableAlignment
from vsrlab.ops.resize import matlab_imresize


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_default_sliding_window_shape_and_parameter_count():
    net = SlidingWindowVSR()
    out = net(torch.rand(2, 5, 3, 12, 16))
    assert out.shape == (2, 3, 48, 64)
    # conv_first 896 + 6 residual blocks x 18,496 + offset convs 18,464 + 9,248
    # + alignment (conv_offset 31,212 + weight 9,216 + bias 32) + fusion 5,152 + upsampler 13,872
    assert count(net) == 896 + 6 * 18496 + 18464 + 9248 + 31212 + 9216 + 32 + 5152 + 13872
    assert count(net.dcn) == 40460 and isinstance(net.dcn, DeformableAlignment)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(align_type="none"),
        dict(deformable_groups=1, num_offsets=1, modulated=False),  # flow-based alignment
        dict(deformable_groups=2, num_offsets=5),  # free offsets, N not a square
        dict(num_frame=3, upscale=2),
    ],
)
def test_variants_run_and_all_parameters_get_gradients(kwargs):
    net = SlidingWindowVSR(num_feat=8, num_extract_block=1, num_reconstruct_block=1, **kwargs)
    scale = kwargs.get("upscale", 4)
    x = torch.rand(2, net.num_frame, 3, 8, 8)
    out = net(x)
    assert out.shape == (2, 3, 8 * scale, 8 * scale)
    out.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


def test_sliding_window_rejects_wrong_window():
    with pytest.raises(ValueError, match="expected windows of 5 frames, got 3"):
        SlidingWindowVSR(num_feat=8)(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="align_type"):
        SlidingWindowVSR(align_type="pcd")


def test_bicubic_baseline_is_matlab_bicubic_of_centre_frame():
    x = torch.rand(1, 3, 3, 10, 12, dtype=torch.float64)
    out = Bicubic(upscale=4, num_frame=3)(x)
    expected = matlab_imresize(x[0, 1].permute(1, 2, 0).numpy(), 4)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), expected, atol=1e-12)
    assert count(Bicubic()) == 0
