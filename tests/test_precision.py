"""Mixed precision: sampling positions, the bicubic skip, losses and scores stay float32 under autocast;
every architecture trains under ``trainer.precision=bf16-mixed`` on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from vsrlab.losses import CharbonnierLoss
from vsrlab.losses.levels import level_psnr
from vsrlab.losses.offset_fidelity import offset_fidelity_loss
from vsrlab.metrics.clip_scores import ClipScores
from vsrlab.models import VSRModule
from vsrlab.ops import (
    DeformableAlignment,
    deform_conv2d,
    deform_kernel_conv2d,
    flow_warp,
    matlab_imresize_tensor,
    patch_align,
)
from vsrlab.ops.deform_kernel import kernel_mixing

CONF = Path(__file__).resolve().parents[1] / "conf"
LOW = [torch.bfloat16, torch.float16]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative L2 difference of ``a`` from ``b``."""
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture
def grid_dtypes(monkeypatch):
    """The dtypes of every grid handed to ``F.grid_sample``."""
    seen: list[torch.dtype] = []
    real = F.grid_sample

    def spy(input, grid, *args, **kwargs):
        seen.append(grid.dtype)
        return real(input, grid, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "grid_sample", spy)
    return seen


def large_flow(size: int = 96, magnitude: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 2, size, size, generator=g) * 2 + magnitude


def test_flow_warp_builds_positions_in_float32_from_a_bfloat16_flow():
    """The issue's measurement: a bf16 flow of about 40 px. Positions built in bf16 (near 64-128 px
    bf16 steps 0.5 px) move the result by about 16%; vsrlab's equals float32 sampling at the same flow."""
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    flow = large_flow().bfloat16()
    reference = flow_warp(x, flow.float())
    assert torch.equal(flow_warp(x, flow), reference)
    # what building the positions in the flow's dtype gives (the earlier behaviour)
    ys, xs = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    px, py = xs.bfloat16() + flow[:, 0], ys.bfloat16() + flow[:, 1]
    grid = torch.stack(((2 * px + 1) / 96 - 1, (2 * py + 1) / 96 - 1), -1).float()
    coarse = F.grid_sample(x, grid, align_corners=False)
    assert rel(coarse, reference) > 0.05


@pytest.mark.parametrize("dtype", LOW)
def test_flow_warp_under_autocast_samples_float32_positions(grid_dtypes, dtype):
    x = torch.rand(2, 8, 96, 96)
    flow = large_flow().expand(2, -1, -1, -1).contiguous()
    with torch.autocast("cpu", dtype=dtype):
        out = flow_warp(x.to(dtype), flow)  # a float32 flow (SPyNet's sum of upsampled levels)
        low_flow = flow_warp(x.to(dtype), flow.to(dtype))
    assert grid_dtypes and set(grid_dtypes) == {torch.float32}
    assert out.dtype == dtype
    # only the values' rounding (2^-9 bf16, 2^-12 fp16 relative) remains; a low-precision flow's
    # own rounding (0.25 px bf16 at 40 px) is its input, sampled exactly
    assert rel(out, flow_warp(x, flow)) < (0.005 if dtype == torch.bfloat16 else 0.001)
    assert rel(low_flow, flow_warp(x.to(dtype).float(), flow.to(dtype).float())) < 0.005


def test_flow_warp_keeps_float64():
    x, flow = torch.rand(1, 2, 8, 8, dtype=torch.float64), torch.rand(1, 2, 8, 8, dtype=torch.float64)
    assert flow_warp(x, flow).dtype == torch.float64


@pytest.mark.parametrize("dtype", LOW)
def test_deform_conv2d_under_autocast(grid_dtypes, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 16, 24, 24, generator=g)
    offset = torch.randn(2, 2 * 4 * 9, 24, 24, generator=g) * 20  # tens of pixels
    mask = torch.rand(2, 4 * 9, 24, 24, generator=g)
    weight = torch.randn(8, 16, 3, 3, generator=g) * 0.1
    reference = deform_conv2d(x, offset, weight, None, 1, 1, 1, mask)
    with torch.autocast("cpu", dtype=dtype):
        out = deform_conv2d(x, offset, weight, None, 1, 1, 1, mask)
    assert set(grid_dtypes) == {torch.float32}
    assert rel(out, reference) < (0.01 if dtype == torch.bfloat16 else 0.002)


def test_alignment_with_offsets_of_tens_of_pixels_keeps_sub_pixel_accuracy_under_bf16():
    """G = 4 x N = 9 with offsets of +-30 px: the bf16 result is closer to float32 than moving every
    offset by 1/8 px is (positions in bf16 would be off by up to 0.25 px there)."""
    torch.manual_seed(0)
    align = DeformableAlignment(16, 16, 16, offset_groups=4, num_offsets=9)
    x = torch.rand(1, 16, 32, 32)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    offset = (30 * torch.stack([ys, xs]).repeat(36, 1, 1)).unsqueeze(0) + torch.randn(1, 72, 32, 32)
    mask = torch.rand(1, 36, 32, 32)
    with torch.no_grad():
        reference = align.align(x, offset, mask)
        shifted = align.align(x, offset + 0.125, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = align.align(x, offset, mask)
    assert out.dtype == torch.bfloat16
    assert rel(out, reference) < rel(shifted, reference) / 2
    # with positions rounded as bf16 (the offsets themselves exactly representable) it is worse
    base = torch.arange(32.0)
    coarse_offset = ((offset.view(1, 36, 2, 32, 32) + base.view(1, 1, 1, 1, 32)).bfloat16().float()
                     - base.view(1, 1, 1, 1, 32)).view_as(offset)  # fmt: skip
    with torch.no_grad():
        assert rel(align.align(x, coarse_offset, mask), reference) > rel(out, reference)


def test_alignment_module_forward_under_autocast_matches_float32(grid_dtypes):
    torch.manual_seed(0)
    align = DeformableAlignment(16, 16, 16, offset_groups=4, num_offsets=9)
    torch.nn.init.normal_(align.conv_offset.weight, std=0.5)  # non-zero offsets
    x, cond = torch.rand(2, 16, 20, 20), torch.rand(2, 16, 20, 20)
    with torch.no_grad():
        reference = align(x, cond)
        offsets = align.last_offset
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = align(x, cond)
    assert offsets.abs().mean() > 1.0
    assert set(grid_dtypes) == {torch.float32}
    # the offsets come from a bf16 convolution: their own rounding (2^-8 relative) remains
    assert rel(out, reference) < 0.03


def test_deform_kernel_conv_positions_and_result_under_autocast():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 8, 12, 12, generator=g)
    kernel_offset = torch.randn(1, 2 * 2 * 9, 12, 12, generator=g)
    scope = torch.randn(8, 1, 4, 4, generator=g)
    offset = torch.randn(1, 2 * 9, 12, 12, generator=g) * 10
    reference = deform_kernel_conv2d(x, kernel_offset, scope, None, 1, 1, 1, 8, offset)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixing = kernel_mixing(kernel_offset.bfloat16(), 3, 4)
        out = deform_kernel_conv2d(x, kernel_offset, scope, None, 1, 1, 1, 8, offset)
    assert mixing.dtype == torch.float32
    assert torch.allclose(mixing, kernel_mixing(kernel_offset.bfloat16().float(), 3, 4))
    assert rel(out, reference) < 0.01


def test_patch_align_moves_whole_pixels_under_autocast():
    x = torch.rand(1, 4, 32, 32)
    flow = large_flow(32, 12.0)
    reference = patch_align(x, flow)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = patch_align(x, flow)
    assert torch.equal(out, reference)  # nearest: every value is copied, none resampled


@pytest.mark.parametrize("dtype", LOW)
def test_matlab_bicubic_stays_float32_under_autocast(dtype):
    x = torch.rand(2, 3, 16, 16)
    reference = matlab_imresize_tensor(x, 4)
    with torch.autocast("cpu", dtype=dtype):
        out = matlab_imresize_tensor(x, 4)
        from_low = matlab_imresize_tensor(x.to(dtype), 4)
    assert out.dtype == torch.float32 and torch.equal(out, reference)
    assert from_low.dtype == torch.float32
    assert torch.allclose(from_low, matlab_imresize_tensor(x.to(dtype).float(), 4), atol=1e-6)


def test_losses_and_scores_reduce_in_float32():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 32, 32, generator=g)
    pred = (gt + 0.01 * torch.randn(2, 3, 32, 32, generator=g)).bfloat16()
    loss = CharbonnierLoss(reduction="sum")(pred, gt.bfloat16())
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, CharbonnierLoss(reduction="sum")(pred.float(), gt.bfloat16().float()))
    psnr_low, psnr_high = level_psnr([pred], [gt])[0], level_psnr([pred.float()], [gt])[0]
    assert psnr_low.dtype == torch.float32 and torch.equal(psnr_low, psnr_high)
    offsets = (torch.randn(2, 4, 8, 8, generator=g) * 30).bfloat16()
    flow = torch.randn(2, 2, 8, 8, generator=g)
    assert torch.equal(
        offset_fidelity_loss(offsets, flow, 1.0), offset_fidelity_loss(offsets.float(), flow, 1.0)
    )
    scores = {}
    for name, out in (("low", pred), ("high", pred.float())):
        s = ClipScores()
        s.update(0, "clip", [0, 1], out, out.float(), gt)
        scores[name] = {k: float(v) for k, v in s.compute().items()}
    assert scores["low"] == scores["high"]


# ---------------------------------------------------------------- every architecture, bf16-mixed
# small versions (seconds on a CPU); windows or clips of 64x64 LR frames where SPyNet needs them
_EDVR = {"num_feat": 8, "num_extract_block": 1, "num_reconstruct_block": 1, "deformable_groups": 2}
_TDAN = {"mid_channels": 8, "num_blocks_before_align": 1, "num_blocks_after_align": 1, "deform_groups": 2}
SMALL_ARCHS = {  # name: (arch arguments, frames, LR side)
    "sliding_window": ({"num_feat": 8, "deformable_groups": 2}, 3, 16),
    "edvr": (_EDVR, 5, 16),
    "edvr_l": (_EDVR, 5, 16),
    "tdan": (_TDAN, 5, 16),
    "flow_vsr": ({"num_feat": 8, "num_extract_block": 1, "num_reconstruct_block": 1, "num_frame": 3}, 3, 32),
    "basicvsr": ({"num_feat": 8, "num_block": 1}, 3, 64),
    "iconvsr": ({"num_feat": 8, "num_block": 1, "keyframe_stride": 2}, 5, 64),
    "basicvsr_pp": ({"mid_channels": 8, "num_blocks": 1, "deformable_groups": 2}, 3, 64),
    "psrt_recurrent": ({"embed_dim": 12, "depths": [1], "num_heads": [2]}, 3, 64),
    "vsr_transformer": (
        {
            "embed_dim": 12,
            "depths": [1],
            "num_heads": [2],
            "mid_channels": 8,
            "alignment": "fgdc",
            "deformable_groups": 3,
        },
        5,
        32,
    ),
    "dksan": (
        {
            "num_feat": 16,
            "num_frame": 3,
            "num_extract_block": 1,
            "deformable_groups": 4,
            "rcab_per_level": [1, 1],
            "upscale": 4,
        },
        3,
        12,
    ),
}


def arch_config(name: str) -> dict:
    cfg = OmegaConf.load(CONF / "arch" / f"{name}.yaml")
    if "defaults" in cfg:  # edvr_l: edvr + its own keys
        base = OmegaConf.load(CONF / "arch" / f"{cfg.defaults[0]}.yaml")
        cfg = OmegaConf.merge(base, {k: v for k, v in cfg.items() if k != "defaults"})
    return OmegaConf.to_container(OmegaConf.merge(cfg, SMALL_ARCHS[name][0]))


def test_every_trainable_arch_config_has_a_small_version():
    trainable = {p.stem for p in (CONF / "arch").glob("*.yaml")} - {"bicubic", "oracle"}  # no parameters
    assert trainable == set(SMALL_ARCHS)


class _Batches(torch.utils.data.Dataset):
    def __init__(self, frames: int, side: int, recurrent: bool, scale: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = []
        for _ in range(3):
            lq = torch.rand(frames, 3, side, side, generator=g)
            gt = torch.rand(frames if recurrent else 1, 3, side * scale, side * scale, generator=g)
            self.items.append({"lq": lq, "gt": gt})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


@pytest.mark.bf16_training
@pytest.mark.parametrize("name", sorted(SMALL_ARCHS))
def test_every_arch_trains_under_bf16_mixed(tmp_path, name):
    torch.manual_seed(0)
    model = VSRModule(
        arch=arch_config(name),
        loss={"_target_": "vsrlab.losses.CharbonnierLoss"},
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3},
    )
    frames, side = SMALL_ARCHS[name][1:]
    scale = int(getattr(model.net, "upscale", 4))
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    losses, conv_dtypes = [], set()
    conv = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # reconstruction
    conv.register_forward_hook(lambda m, i, o: conv_dtypes.add(o.dtype))

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", max_steps=3, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, callbacks=[Record()])  # fmt: skip
    data = _Batches(frames, side, model.is_recurrent, scale)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=1))
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert conv_dtypes == {torch.bfloat16}  # the steps ran under autocast
    after = model.net.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # weights stay float32
    changed = [k for k, v in after.items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(changed) > len(after) // 3
    # the bf16 forward is the float32 forward up to bf16 rounding
    model.net.eval()
    lq = data.items[0]["lq"][None]
    with torch.no_grad():
        reference = model.net(lq)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.net(lq)
    assert rel(out, reference) < 0.02


def test_precision_fits_the_machine(make_cfg, caplog):
    """``auto`` is bf16 only where the CPU has native bf16 (else float32); a requested bf16 on a CPU
    without it is kept, with one warning naming the slow kernel and what to set instead."""
    from vsrlab.engine.trainer import build_trainer
    from vsrlab.utils.precision import cpu_has_native_bf16, resolve_precision

    assert resolve_precision("auto", on_cuda=False, native_bf16=True) == ("bf16-mixed", None)
    assert resolve_precision("auto", on_cuda=False, native_bf16=False) == ("32-true", None)
    assert resolve_precision("32-true", on_cuda=False, native_bf16=False) == ("32-true", None)
    assert resolve_precision("bf16-mixed", on_cuda=False, native_bf16=True) == ("bf16-mixed", None)
    kept, warning = resolve_precision("bf16-mixed", on_cuda=False, native_bf16=False)
    assert kept == "bf16-mixed" and "without native bf16" in warning and "slow reference kernel" in warning
    assert "trainer.precision=32-true" in warning
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert cpu_has_native_bf16() == native  # this machine's answer, as oneDNN gives it
    with caplog.at_level("WARNING", logger="vsrlab.engine.trainer"):
        trainer = build_trainer(make_cfg(overrides=["trainer.precision=auto"]))
        assert trainer.precision == ("bf16-mixed" if native else "32-true")
        build_trainer(make_cfg(overrides=["trainer.precision=bf16-mixed"]))
    warned = [r for r in caplog.records if "without native bf16" in r.getMessage()]
    assert len(warned) == (0 if native else 1)
