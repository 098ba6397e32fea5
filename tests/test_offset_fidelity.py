"""Offset-fidelity loss (Eq. 5), offset recording, the overflow monitor, and the training options
that recipes use (pretrained init, lr multipliers, freezing)."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from vsrlab.callbacks import OffsetMonitor
from vsrlab.losses import OffsetFidelityLoss, offset_fidelity_loss
from vsrlab.ops import DeformableAlignment, offsets_per_frame, record_offsets


def _authors_formula(offset, flow, t):
    """Eq. 5 spelled out pair by pair: sum over samples and pairs of mean over (2, h, w) of masked |diff|."""
    n, c, h, w = offset.shape
    total = 0.0
    for i in range(n):
        for k in range(c // 2):
            d = (offset[i, 2 * k : 2 * k + 2] - flow[i].flip(0)).abs()
            total += float((d * (d > t)).mean())
    return total


def test_loss_values():
    offset = torch.zeros(1, 4, 2, 2)
    offset[:, 0] = 15.0  # pair 0: dy = 15 > t, dx = 0  -> mean over (2, h, w) = 7.5
    offset[:, 2:] = 5.0  # pair 1: both within t       -> 0
    assert float(OffsetFidelityLoss(2.0, 10.0)(offset, torch.zeros(1, 2, 2, 2))) == pytest.approx(15.0)
    # flow is (x, y), offsets (y, x): a dx = 20 offset matches a flow of x = 20
    flow = torch.zeros(1, 2, 2, 2)
    flow[:, 0] = 20.0
    off = torch.zeros(1, 2, 2, 2)
    off[:, 1] = 20.0
    assert float(offset_fidelity_loss(off, flow)) == 0.0
    g = torch.Generator().manual_seed(0)
    o, f = torch.randn(3, 18, 5, 4, generator=g) * 20, torch.randn(3, 2, 5, 4, generator=g) * 20
    assert float(offset_fidelity_loss(o, f, 10.0)) == pytest.approx(_authors_formula(o, f, 10.0), rel=1e-5)
    with pytest.raises(ValueError, match=r"\(3, 2, 4, 4\)"):
        offset_fidelity_loss(o, torch.zeros(3, 2, 4, 4))


def test_gradient_pulls_offsets_towards_the_flow():
    offset = torch.full((1, 2, 3, 3), 30.0, requires_grad=True)
    offset_fidelity_loss(offset, torch.zeros(1, 2, 3, 3)).backward()
    assert torch.all(offset.grad > 0)


def test_recording_per_frame_and_batched_calls():
    dcn = DeformableAlignment(4, 4, 4, offset_groups=2, num_offsets=9)
    b, t = 2, 3
    feats = [torch.rand(b, 4, 5, 5) for _ in range(t)]
    with record_offsets(dcn) as rec:
        for f in feats:
            dcn(f, f)
    per_frame = offsets_per_frame(rec[""], b, t)
    assert per_frame.shape == (b, t, 36, 5, 5)
    with record_offsets(dcn) as rec2:
        dcn(torch.cat(feats), torch.cat(feats))
    assert offsets_per_frame(rec2[""], b * t, 1).shape == (b * t, 1, 36, 5, 5)
    assert dcn.offset_history is None  # recording stops with the block
    with pytest.raises(ValueError, match="cannot match 2 alignment calls"):
        offsets_per_frame(rec[""][:2], b, t)


def _train(make_cfg, overrides, steps, callbacks=()):
    cfg = make_cfg(overrides=[f"trainer.max_steps={steps}", "data.train.num_frames=3", *overrides])
    model = instantiate(cfg.model)
    model.initial_state = {k: v.clone() for k, v in model.net.state_dict().items()}
    dm = instantiate(cfg.data)
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=list(callbacks),
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(model, datamodule=dm)
    return model, trainer


def test_offset_fidelity_keeps_offsets_bounded_at_an_exaggerated_learning_rate(make_cfg):
    """Offset overflow (Sec. 4.3) provoked by lr 0.05: without the loss the mean |offset| runs away
    past BasicSR's warning level of 50 and the monitor names the module; with it, it stays bounded."""
    common = ["model.optimizer.lr=0.05", "model.scheduler=null", "arch.num_feat=16", "data.batch_size=4"]
    monitor = OffsetMonitor(threshold=50.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(make_cfg, common, 12, [monitor])
    free = monitor.last_values["dcn"]
    assert any("offset overflow" in str(w.message) and "dcn" in str(w.message) for w in caught)
    bounded_monitor = OffsetMonitor(threshold=50.0)
    _train(make_cfg, [*common, "offset_fidelity=batch"], 12, [bounded_monitor])
    bounded = bounded_monitor.last_values["dcn"]
    assert free > 50.0 and bounded < 50.0 and bounded < free / 10, (free, bounded)


def test_offset_fidelity_with_a_spynet_teacher_trains(make_cfg):
    with pytest.warns(UserWarning, match="spynet_path is null: the SPyNet teacher"):
        model, trainer = _train(make_cfg, ["offset_fidelity=spynet"], 2)
    assert model._flow_teacher is not None
    assert "_flow_teacher" not in dict(model.named_modules())
    assert not any(k.startswith("_flow_teacher") for k in model.state_dict())


def test_lr_multipliers_and_freezing(make_cfg):
    cfg_over = [
        "+model.lr_mult.dcn=0.25",
        "model.scheduler=null",
        "model.freeze=[{modules: ['*'], exclude: [upsample], until_step: 2}]",
    ]
    model, _ = _train(make_cfg, cfg_over, 0)
    opt = model.configure_optimizers()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([2e-3 * 0.25, 2e-3])
    dcn_ids = {id(p) for p in model.net.dcn.parameters()}
    small = next(g for g in opt.param_groups if g["lr"] < 1e-3)
    assert {id(p) for p in small["params"]} == dcn_ids

    frozen_names = {
        n for n, p in model.net.named_parameters() if any(p is q for q in model.frozen_parameters(0))
    }
    assert frozen_names and not any(n.startswith("upsample") for n in frozen_names)
    assert model.frozen_parameters(2) == []

    model, _ = _train(make_cfg, cfg_over, 2)
    init, trained = model.initial_state, model.net.state_dict()
    assert torch.equal(trained["conv_first.weight"], init["conv_first.weight"])
    assert not torch.equal(trained["upsample.0.weight"], init["upsample.0.weight"])


def test_unknown_module_prefixes_are_named(make_cfg):
    cfg = make_cfg(overrides=["+model.lr_mult.spynet=0.125"])
    with pytest.raises(Exception, match="'spynet'"):
        instantiate(cfg.model)


def test_arch_pretrained_initialises_a_fresh_run_only(make_cfg, tmp_path):
    src = instantiate(make_cfg(overrides=["data.train.num_frames=3"]).model).net
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)
    torch.save({"params": src.state_dict()}, tmp_path / "w.pth")
    model, _ = _train(
        make_cfg,
        [f"+arch.pretrained={tmp_path / 'w.pth'}", "model.optimizer.lr=0.0", "model.scheduler=null"],
        1,
    )
    for k, v in src.state_dict().items():
        assert torch.allclose(model.net.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        _train(make_cfg, [f"+arch.pretrained={tmp_path / 'missing.pth'}"], 1)
