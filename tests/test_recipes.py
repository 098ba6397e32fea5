"""Every published recipe composes with the paper's values (data included) and runs a debug=fdr smoke
test on a tiny REDS / Vimeo-90K layout written here (architectures shrunk to take seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf.errors import InterpolationToMissingValueError
from test_datasets import reds_layout, vimeo_layout

from conftest import compose_config
from vsrlab.apps.train import train

# small versions of each architecture and clip lengths for the smoke test
SMALL = {
    "edvr": [
        "arch.num_feat=8",
        "arch.num_extract_block=1",
        "arch.num_reconstruct_block=1",
        "arch.deformable_groups=2",
    ],
    "tdan": [
        "arch.mid_channels=8",
        "arch.num_blocks_before_align=1",
        "arch.num_blocks_after_align=1",
        "arch.deform_groups=2",
    ],
    "flow_vsr": ["arch.num_feat=8", "arch.num_extract_block=1", "arch.num_reconstruct_block=1"],
    "basicvsr": ["arch.num_feat=8", "arch.num_block=1", "data.train.num_frames=3"],
    "iconvsr": ["arch.num_feat=8", "arch.num_block=1", "data.train.num_frames=5", "arch.keyframe_stride=2"],
    "basicvsr_pp": [
        "arch.mid_channels=8",
        "arch.num_blocks=1",
        "arch.deformable_groups=2",
        "data.train.num_frames=3",
        "data.train.gt_size=256",
    ],
    "psrt_recurrent": [
        "arch.embed_dim=12",
        "arch.depths=[1]",
        "arch.num_heads=[2]",
        "data.train.num_frames=3",
        "data.train.gt_size=256",
    ],
}
RECIPES = {
    "edvr_m_wotsa": "edvr",
    "edvr_m": "edvr",
    "edvr_l_wotsa": "edvr",
    "edvr_l": "edvr",
    "tdan": "tdan",
    "flow_vsr": "flow_vsr",
    "basicvsr": "basicvsr",
    "iconvsr": "iconvsr",
    "basicvsr_pp": "basicvsr_pp",
    "psrt_recurrent": "psrt_recurrent",
    "psrt_recurrent_vimeo": "psrt_recurrent",
}
# the FAST overrides of conftest shrink the default arch; recipes need their own
_GENERIC = ["data.batch_size=1", "data.train.gt_size=32", "arch.pretrained=null", "data.pin_memory=false"]


def _cfg(tmp_path: Path, recipe: str, extra: list[str] = ()):
    return compose_config("train", [f"experiment={recipe}", *extra], tmp_path / "run")


def _smoke_cfg(tmp_path: Path, recipe: str):
    root = tmp_path / "data"
    if recipe in ("tdan", "psrt_recurrent_vimeo"):
        vimeo_layout(root, size=(256, 256) if recipe.startswith("psrt") else (32, 32))
    else:  # BasicVSR++ (as BasicSR's) needs LR frames of at least 64x64
        reds_layout(root, (256, 256) if recipe.startswith(("basicvsr_pp", "psrt")) else (32, 48))
    fast = [
        "debug=fdr",
        "extras.print_config=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.num_workers=0",
        f"data.root={root}",
    ]
    return _cfg(tmp_path, recipe, [*fast, *_GENERIC, *SMALL[RECIPES[recipe]]])


EXPECTED = {  # (arch target class, lr, max_steps, loss reduction, lr_mult, frozen modules, until)
    "edvr_m_wotsa": ("EDVR", 4e-4, 600_000, "sum", {}, None),
    "edvr_m": ("EDVR", 4e-4, 600_000, "sum", {}, (["*"], 50_000)),
    "edvr_l": ("EDVR", 4e-4, 600_000, "sum", {}, (["*"], 50_000)),
    "tdan": ("TDAN", 1e-4, 400_000, "mean", {}, None),
    "basicvsr": ("BasicVSR", 2e-4, 300_000, "mean", {"spynet": 0.125}, (["spynet"], 5000)),
    "iconvsr": ("IconVSR", 2e-4, 300_000, "mean", {"spynet": 0.125}, (["spynet"], 5000)),
    "basicvsr_pp": ("BasicVSRPlusPlus", 1e-4, 600_000, "mean", {"spynet": 0.25}, (["spynet"], 5000)),
    "psrt_recurrent": ("PSRTRecurrent", 2e-4, 600_000, "mean", {"spynet": 0.125}, (["spynet"], 5000)),
    "psrt_recurrent_vimeo": ("PSRTRecurrent", 1e-4, 300_000, "mean", {"spynet": 0.25}, (["spynet"], 5000)),
}


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_recipe_values(tmp_path, recipe):
    cfg = _cfg(tmp_path, recipe)
    cls, lr, steps, reduction, lr_mult, freeze = EXPECTED[recipe]
    assert cfg.arch._target_.endswith("." + cls)
    data = {"tdan": ("vimeo90k", 192), "psrt_recurrent_vimeo": ("vimeo90k", 256)}.get(recipe, ("reds", 256))
    assert (cfg.data.name, cfg.data.train.gt_size) == data
    recurrent = cls in ("BasicVSR", "IconVSR", "BasicVSRPlusPlus", "PSRTRecurrent")
    assert cfg.data.train.sampling == ("sequence" if recurrent else "window")
    frames = {"BasicVSRPlusPlus": 30, "BasicVSR": 15, "IconVSR": 15, "PSRTRecurrent": 16}.get(cls, 5)
    assert cfg.data.train.num_frames == (7 if recipe == "psrt_recurrent_vimeo" else frames)
    assert cfg.model.optimizer.lr == lr
    assert cfg.trainer.max_steps == steps
    assert cfg.model.loss.reduction == reduction
    assert dict(cfg.model.lr_mult) == lr_mult
    if freeze is None:
        assert not cfg.model.freeze
    else:
        assert list(cfg.model.freeze[0].modules) == freeze[0] and cfg.model.freeze[0].until_step == freeze[1]


def test_psrt_recipe_trains_in_mixed_precision_on_gpus_only(tmp_path):
    cfg = _cfg(tmp_path, "psrt_recurrent")
    assert cfg.trainer.precision == "32-true" and cfg.arch.use_checkpoint
    assert cfg.model.ema.decay == 0.999 and list(cfg.model.optimizer.betas) == [0.9, 0.99]
    assert not cfg.data.train.random_reverse
    gpu = _cfg(tmp_path, "psrt_recurrent", ["trainer=gpu"])
    assert gpu.trainer.precision == "16-mixed"
    vimeo = _cfg(tmp_path, "psrt_recurrent_vimeo")
    assert vimeo.data.train.flip_sequence and vimeo.model.ema.decay == 0.999


def test_edvr_second_stage_needs_the_first_stage_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, "edvr_m")
    assert cfg.arch.with_tsa and not cfg.arch.pretrained_strict
    with pytest.raises(InterpolationToMissingValueError, match="stage1_ckpt"):
        _ = cfg.arch.pretrained
    assert _cfg(tmp_path, "edvr_l").arch.num_reconstruct_block == 40


def test_tdan_recipe_uses_mse_and_the_aligned_lr_loss(tmp_path):
    cfg = _cfg(tmp_path, "tdan")
    assert cfg.model.loss._target_ == "vsrlab.losses.MSELoss"
    assert cfg.model.aligned_lr_loss.loss_weight == 0.01
    assert cfg.model.optimizer.weight_decay == 1e-6 and cfg.model.scheduler is None


SLOW_RECIPES = ("psrt_recurrent_vimeo",)  # over 20 s on 2 cores


@pytest.mark.parametrize(
    "recipe", [pytest.param(r, marks=pytest.mark.slow) if r in SLOW_RECIPES else r for r in sorted(RECIPES)]
)
def test_recipe_smoke_run(tmp_path, recipe):
    results = train(_smoke_cfg(tmp_path, recipe))
    assert results["global_step"] == 1


@pytest.mark.slow
def test_psrt_recurrent_trains_on_the_synthetic_clips(tmp_path):
    """The recipe on the embedded data (its GT patch size carries over), 3-frame clips."""
    fast = ["debug=fdr", "extras.print_config=false", "trainer.enable_progress_bar=false"]
    small = [o for o in SMALL["psrt_recurrent"] if not o.startswith("data.train.gt_size")]
    cfg = _cfg(
        tmp_path,
        "psrt_recurrent",
        [
            *fast,
            "data=synthetic",
            "data.batch_size=1",
            "data.train.lq_size=[64,64]",
            "data.val.num_clips=1",
            "data.val.num_frames=3",
            "arch.pretrained=null",
            *small,
        ],
    )
    results = train(cfg)
    assert results["global_step"] == 1
    assert results["test"]["mean"]["psnr"] > 10  # a real reconstruction of the synthetic clip, not noise
