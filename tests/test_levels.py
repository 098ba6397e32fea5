"""Multi-level loss and per-level PSNR of cascaded networks (vsrlab.losses.levels)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from vsrlab.losses import L1Loss
from vsrlab.losses.levels import LevelTerm, level_psnr, level_targets, returns_levels
from vsrlab.losses.terms import StepOutputs
from vsrlab.ops.resize import matlab_imresize_tensor


class Cascade(nn.Module):
    """Two x2 levels: each the bicubic x2 of the previous plus a learned 1x1 residual."""

    temporal = "window"
    offset_axes = None
    num_frame, center_frame_idx, levels = 1, 0, 2

    def __init__(self) -> None:
        super().__init__()
        self.res = nn.ModuleList(nn.Conv2d(3, 3, 1) for _ in range(2))

    def forward(self, x: torch.Tensor, return_levels: bool = False):
        out, levels = x[:, 0], []
        for res in self.res:
            up = matlab_imresize_tensor(out, 2)
            out = up + res(up)
            levels.append(out)
        return levels if return_levels else out


def test_targets_are_matlab_bicubic_of_the_gt():
    gt = torch.rand(2, 3, 32, 24)
    x2, x4 = level_targets(gt, [(16, 12), (32, 24)])
    assert x4 is gt
    torch.testing.assert_close(x2, matlab_imresize_tensor(gt, 0.5))
    with pytest.raises(ValueError, match="a level of size 10x7 does not divide"):
        level_targets(gt, [(10, 7)])


def test_psnr_per_level_is_exact_for_a_known_error():
    gt = torch.full((2, 3, 8, 8), 0.5)
    (psnr,) = level_psnr([gt + 0.1], [gt])
    assert float(psnr) == pytest.approx(20.0, abs=1e-4)


def test_weighted_loss_over_levels_and_final_only():
    net = Cascade()
    lq, gt = torch.rand(2, 1, 3, 8, 8), torch.rand(2, 3, 32, 32)
    levels = net(lq, return_levels=True)
    loss_fn = L1Loss()
    expected = 0.5 * loss_fn(levels[0], matlab_imresize_tensor(gt, 0.5)) + 2.0 * loss_fn(levels[1], gt)
    step = StepOutputs({"lq": lq}, levels[-1], gt, 0, levels=levels)
    loss, psnrs = LevelTerm([0.5, 2.0], loss_fn)(step)
    torch.testing.assert_close(loss, expected)
    final, _ = LevelTerm(None, loss_fn)(step)
    torch.testing.assert_close(final, loss_fn(levels[1], gt))
    assert sorted(psnrs) == ["psnr_level1", "psnr_level2"]


def test_config_errors_name_the_key():
    assert returns_levels(Cascade()) and LevelTerm.from_config(None, Cascade()).weights is None
    assert LevelTerm.from_config(None, nn.Conv2d(3, 3, 1)) is None
    with pytest.raises(ValueError, match="model.level_weights: Conv2d returns no levels"):
        LevelTerm.from_config([1.0], nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="model.level_weights has 3 weights for the 2 levels of Cascade"):
        LevelTerm.from_config([1.0, 1.0, 1.0], Cascade())
