"""The training loss as named terms behind one interface (vsrlab.losses.terms): which terms a config
builds, what they need from the network, and a training step's loss equal to the terms computed by hand."""

from __future__ import annotations

import pytest
import torch

from vsrlab.archs import TDAN, SlidingWindowVSR
from vsrlab.losses import CharbonnierLoss, OffsetFidelityLoss, build_loss_terms
from vsrlab.models import VSRModule
from vsrlab.ops import record_offsets

PIX = {"_target_": "vsrlab.losses.CharbonnierLoss"}
FIDELITY = {"loss": {"_target_": "vsrlab.losses.OffsetFidelityLoss", "loss_weight": 0.1, "threshold": 0.5}}
NET = {"_target_": "vsrlab.archs.SlidingWindowVSR", "num_feat": 8, "num_frame": 3, "num_extract_block": 1,
       "num_reconstruct_block": 1, "deformable_groups": 2, "num_offsets": 1, "modulated": False}  # fmt: skip


def test_terms_of_each_config_and_what_they_need():
    net = SlidingWindowVSR(num_feat=8, num_frame=3, deformable_groups=2, num_offsets=1)
    terms = build_loss_terms(net, PIX, None, FIDELITY)
    assert [t.name for t in terms] == ["pix", "offset"]
    assert [sorted(t.needs) for t in terms] == [[], ["offsets"]]
    assert build_loss_terms(net, None) == []
    tdan = build_loss_terms(TDAN(), PIX, aligned_lr_loss={"_target_": "vsrlab.losses.MSELoss"})
    assert [(t.name, sorted(t.needs)) for t in tdan] == [("pix", []), ("aligned_lr", ["aligned_lr"])]
    with pytest.raises(ValueError, match="model.aligned_lr_loss: SlidingWindowVSR returns no aligned LR"):
        build_loss_terms(net, PIX, aligned_lr_loss={"_target_": "vsrlab.losses.MSELoss"})
    with pytest.raises(ValueError, match="model.level_weights: SlidingWindowVSR returns no levels"):
        build_loss_terms(net, PIX, level_weights=[1.0, 1.0])


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
def test_training_step_loss_is_the_sum_of_its_terms_by_hand():
    torch.manual_seed(0)
    model = VSRModule(arch=NET, loss=PIX, offset_fidelity=FIDELITY)
    with torch.no_grad():  # offsets away from zero, so that the fidelity term is not 0
        model.net.dcn.conv_offset.bias.fill_(1.5)
    lq, gt = torch.rand(2, 3, 3, 8, 8), torch.rand(2, 3, 3, 32, 32)
    flow = torch.rand(2, 3, 2, 8, 8) - 0.5
    loss = model.training_step({"lq": lq, "gt": gt, "flow": flow}, 0)

    with torch.no_grad(), record_offsets(model.net) as offsets:
        out = model.net(lq)
    (calls,) = offsets.values()
    (offset,) = calls  # one call of batch B * T, (B, T) flattened
    expected = CharbonnierLoss()(out, gt[:, 1]) + OffsetFidelityLoss(0.1, 0.5)(offset, flow.flatten(0, 1))
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    assert float(expected - CharbonnierLoss()(out, gt[:, 1])) > 0.01
