"""Cosine annealing with restarts."""

from __future__ import annotations

import pytest
import torch

from vsrlab.optim import CosineAnnealingRestartLR


def test_cosine_restart_values():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = CosineAnnealingRestartLR(opt, periods=[10, 10], restart_weights=[1.0, 0.5], eta_min=1e-5)
    lrs = []
    for _ in range(22):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[5] == pytest.approx(5.05e-4)  # eta_min + (base - eta_min) / 2
    assert lrs[10] == pytest.approx(5.05e-4)  # restart at half weight
    assert lrs[15] == pytest.approx(1e-5 + 0.25 * 9.9e-4)
    assert lrs[20] == lrs[21] == pytest.approx(1e-5)  # after the last period
    assert all(a > b for a, b in zip(lrs[:9], lrs[1:10], strict=True))


def test_cosine_restart_rejects_mismatched_lengths():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(ValueError, match="same length"):
        CosineAnnealingRestartLR(opt, periods=[10, 10], restart_weights=[1.0])
