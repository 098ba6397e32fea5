"""Video extreme SR (x16): the DKSAN and EDVR x16 recipes with the paper's values, debug runs on the
synthetic clips at x16 and on a Vid3oC layout written here, the ablation sweep's jobs, the bicubic x16
baseline, and the per-level PSNR of the cascade."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from test_datasets import frames, write_pair

from conftest import compose_config
from vsrlab.apps.evaluate import evaluate
from vsrlab.apps.train import train
from vsrlab.archs.pretrained import build_arch

TINY_DKSAN = [
    "arch.num_frame=3",
    "arch.num_feat=16",
    "arch.num_extract_block=1",
    "arch.deformable_groups=2",
    "arch.rcab_per_level=[1,1,1,1]",
    "arch.squeeze_factor=4",
]
QUICK = [
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.num_workers=0",
    "data.pin_memory=false",
    "data.batch_size=1",
]
SYNTHETIC_X16 = [
    "data=synthetic",
    "data.train.gt_size=64",  # the recipe sets GT 512 (LR 32): LR 4 here
    "data.val.num_clips=1",
    "data.val.num_frames=3",
    "data.val.lq_size=[4,4]",
]
PAPER = {"backbone": (False, False, False), "channel_attention": (False, True, False),
         "dkc_align": (True, True, False), "full": (True, True, True)}  # fmt: skip


def cfg_of(tmp_path: Path, overrides: list[str], name: str = "train", run: str = "run"):
    try:
        return compose_config(name, overrides, tmp_path / run)
    finally:
        GlobalHydra.instance().clear()


def test_dksan_recipe_has_the_papers_values(tmp_path):
    cfg = cfg_of(tmp_path, ["experiment=dksan"])
    assert cfg.arch._target_.endswith("DKSAN") and (cfg.arch.num_feat, cfg.arch.num_frame) == (128, 7)
    assert list(cfg.arch.rcab_per_level) == [30, 20, 15, 10] and cfg.arch.squeeze_factor == 16
    assert (cfg.arch.align, cfg.arch.channel_attention, cfg.arch.dksa) == (True, True, True)
    assert cfg.data.name == "vid3oc" and cfg.data.train.scale == 16 and cfg.data.train.gt_size == 512
    assert cfg.data.batch_size == 16 and cfg.data.train.use_hflip and cfg.data.train.use_rot
    assert cfg.model.optimizer.lr == 4e-4 and list(cfg.model.optimizer.betas) == [0.9, 0.999]
    assert cfg.model.loss._target_.endswith("CharbonnierLoss") and cfg.model.loss.eps == 1e-3
    assert cfg.trainer.max_steps == 115_000 and cfg.model.scheduler is None
    edvr = cfg_of(tmp_path, ["experiment=edvr_x16"], run="edvr")
    assert edvr.arch._target_.endswith("EDVR") and (edvr.arch.num_feat, edvr.arch.upscale) == (128, 16)
    assert edvr.data.train.scale == 16 and edvr.model.optimizer.lr == 4e-4


@pytest.mark.parametrize("variant", sorted(PAPER))
def test_ablation_rows_set_the_switches(tmp_path, variant):
    cfg = cfg_of(tmp_path, ["sweep=dksan_ablation", f"row/dksan_ablation={variant}"])
    assert (cfg.arch.align, cfg.arch.channel_attention, cfg.arch.dksa) == PAPER[variant]
    with torch.device("meta"):
        net = build_arch(cfg.arch)
    assert net.upscale == 16 and net.levels == 4


def test_dksan_debug_run_on_synthetic_x16_logs_every_level(tmp_path):
    steps = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.num_sanity_val_steps=0",
             "trainer.log_every_n_steps=1", "test=false", "logger=csv", "callbacks=none"]  # fmt: skip
    cfg = cfg_of(tmp_path, ["experiment=dksan", *SYNTHETIC_X16, *QUICK, *TINY_DKSAN, *steps])
    assert cfg.data.train.scale == 16
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    logged = (tmp_path / "run").rglob("metrics.csv")
    header = next(iter(logged)).read_text().splitlines()[0].split(",")
    assert {f"train/psnr_level{i}" for i in (1, 2, 3, 4)} <= set(header)
    levels = [metrics["val"][f"val/psnr_level{i}"] for i in (1, 2, 3, 4)]
    # the last level is the output that the clip scores measure (there on every window of the clip)
    assert all(np.isfinite(levels)) and metrics["val"]["val/psnr"] > 0


def test_dksan_on_a_vid3oc_layout_and_the_bicubic_x16_baseline(tmp_path):
    root = tmp_path / "Vid3oC"
    for split in ("train", "val"):
        for i in range(2):
            gt = frames(i, 3, 64, 64)
            names = [f"{t:03d}" for t in range(3)]
            write_pair(root / f"{split}/HR", root / f"{split}/LR", f"{i:03d}", gt, names, scale=16)
    data = [f"data.root={root}", "data.train.gt_size=64"]
    cfg = cfg_of(tmp_path, ["experiment=dksan", *data, *QUICK, *TINY_DKSAN, "debug=fdr"])
    train(cfg)
    baseline = ["arch=bicubic", "arch.upscale=16", "data=vid3oc", *data]
    bicubic = evaluate(cfg_of(tmp_path, baseline, "eval", "b"))
    assert bicubic["mean"]["psnr"] == pytest.approx(bicubic["mean"]["psnr_bicubic"], abs=1e-6)
    with pytest.raises(ValueError, match="arch.upscale=4 but clip 000 is x16 .*set arch.upscale=16"):
        evaluate(cfg_of(tmp_path, ["arch=bicubic", "data=vid3oc", *data], "eval", "c"))


def test_edvr_x16_debug_run_on_synthetic(tmp_path):
    small = ["arch.num_feat=8", "arch.num_extract_block=1", "arch.num_reconstruct_block=1",
             "arch.deformable_groups=2"]  # fmt: skip
    synthetic = SYNTHETIC_X16
    cfg = cfg_of(tmp_path, ["experiment=edvr_x16", *synthetic, *QUICK, *small, "debug=fdr"])
    assert cfg.data.val.scale == 16
    train(cfg)


def test_synthetic_x16_clips_and_bicubic_baseline(tmp_path):
    clips = ["data.val.num_clips=2", "data.val.num_frames=3", "data.val.lq_size=[16,16]"]
    cfg = cfg_of(tmp_path, ["arch=bicubic", "arch.upscale=16", *clips], "eval")
    results = evaluate(cfg)
    assert np.isfinite(results["mean"]["psnr"]) and results["mean"]["psnr"] == results["mean"]["psnr_bicubic"]
