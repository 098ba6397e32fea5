"""Hydra configuration: composition, instantiation, and errors that name the bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from conftest import compose_config
from vsrlab.archs import build_arch
from vsrlab.models import VSRModule

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_train_config_instantiates_every_part(make_cfg):
    cfg = make_cfg()
    assert cfg.arch.num_frame == cfg.data.train.num_frames
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    assert isinstance(model, VSRModule)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["lq"].shape == (2, cfg.arch.num_frame, 3, 16, 16)
    assert model(batch["lq"]).shape == (2, 3, 64, 64)
    trainer = instantiate(cfg.trainer)
    assert trainer.max_steps == 4


# a forward of the full-size transformers takes 30-60 s on 2 cores: in the slow suite (their own tests
# run small versions and count the full ones' parameters)
FULL_SIZE_SLOW = ("psrt_recurrent", "vsr_transformer", "dksan")


@pytest.mark.parametrize(
    "arch",
    [
        pytest.param(p.stem, marks=pytest.mark.slow) if p.stem in FULL_SIZE_SLOW else p.stem
        for p in sorted((CONF / "arch").glob("*.yaml"))
    ],
)
def test_every_arch_config_builds_and_runs(make_cfg, arch):
    cfg = make_cfg(overrides=[f"arch={arch}"] if arch == "sliding_window" else [])
    if arch != "sliding_window":
        cfg = make_cfg("eval", overrides=[f"arch={arch}", "data.val.lq_size=[16,16]"])
    net = build_arch(cfg.arch).eval()
    with torch.no_grad():  # the full-size transformers would keep gigabytes of activations for backward
        if hasattr(net, "num_frame"):  # x16 networks (DKSAN) on 8x8 windows
            scale = getattr(net, "upscale", 4)
            side = 16 if scale <= 4 else 8
            out = net(torch.rand(1, net.num_frame, 3, side, side))
            assert out.shape == (1, 3, side * scale, side * scale)
        else:  # recurrent: whole clips; SPyNet-based ones need 64x64 frames
            t = 2 * getattr(net, "temporal_padding", 0) + 1 if hasattr(net, "temporal_padding") else 2
            assert net(torch.rand(1, t, 3, 64, 64)).shape == (1, t, 3, 256, 256)


@pytest.mark.parametrize(
    "choice",
    [f"{group}={p.stem}" for group in ("experiment", "sweep") for p in sorted((CONF / group).glob("*.yaml"))],
)
def test_every_recipe_and_sweep_composes(tmp_path, choice):
    needs_stage1 = choice in ("experiment=edvr_m", "experiment=edvr_l")
    cfg = compose_config("train", [choice, *(["stage1_ckpt=null"] if needs_stage1 else [])], tmp_path / "run")
    instantiate(cfg.model)


def test_unknown_key_and_group_option_are_named(make_cfg):
    with pytest.raises(ConfigCompositionException, match="max_stepz"):
        make_cfg(overrides=["trainer.max_stepz=3"])
    with pytest.raises(ConfigCompositionException, match="arch.*edvr_xxl|edvr_xxl"):
        make_cfg(overrides=["arch=edvr_xxl"])


def test_typo_inside_a_config_names_the_argument(make_cfg):
    cfg = make_cfg(overrides=["+arch.num_feats=16"])
    with pytest.raises(Exception, match="num_feats"):
        build_arch(cfg.arch)


def test_cli_reports_typo_and_exits_nonzero(tmp_path):
    exe = Path(sys.executable).parent / "vsrlab-train"
    proc = subprocess.run(
        [str(exe), "trainer.max_stepz=3", f"paths.log_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "max_stepz" in proc.stderr


def test_renamed_command_line_keys_are_refused_naming_the_new_key(tmp_path):
    from vsrlab.engine import RenamedKeyError, refuse_renamed_keys

    for argv, new in [
        (["ckpt=a.ckpt", "input=x.mp4"], "`ckpt_path`"),
        (["input=x.mp4", "chunk_size=4"], "`frames_per_chunk`"),
        (["+model.metrics.crop_border=8"], "`model.protocol.crop_border`"),
    ]:
        with pytest.raises(RenamedKeyError, match=new):
            refuse_renamed_keys(argv, "infer")
    # train and eval keep ckpt_path and have no stream chunks: only the protocol's old name is refused
    refuse_renamed_keys(["ckpt_path=a.ckpt", "trainer.max_steps=4", "frames_per_chunk=2"], "train")
    with pytest.raises(RenamedKeyError, match="`model.evaluation.windows_per_forward`"):
        refuse_renamed_keys(["model.evaluation.chunk_size=2"], "train")
    with pytest.raises(RenamedKeyError, match="`model.protocol`"):
        refuse_renamed_keys(["model.metrics={}"], "eval")
    # sweeps and table rows got their own groups
    with pytest.raises(RenamedKeyError, match="a sweep, not a recipe: use `sweep=offset_diversity`"):
        refuse_renamed_keys(["experiment=offset_diversity"], "train")
    with pytest.raises(RenamedKeyError, match="use `row/dksan_ablation`"):
        refuse_renamed_keys(["dksan_variant=full"], "train")
    refuse_renamed_keys(["experiment=edvr_m", "sweep=offset_diversity", "row/vsrt_alignment=fgdc"], "train")
    exe = Path(sys.executable).parent / "vsrlab-infer"
    proc = subprocess.run([str(exe), "ckpt=a.ckpt", "input=x.mp4", f"output={tmp_path}"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "vsrlab-infer: error: `ckpt` was renamed: use `ckpt_path` ('ckpt=a.ckpt')"
    ], proc.stderr
