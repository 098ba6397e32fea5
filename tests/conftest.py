"""Shared fixtures: Hydra configs composed from conf/ with run directories in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from vsrlab.engine import CONFIG_DIR, init

init()

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")


# Overrides that make any training config run in seconds on a CPU.
FAST = [
    "extras.print_config=false",
    "logger=csv",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.train.num_clips=8",
    "data.train.lq_size=[16,16]",
    "data.val.num_clips=2",
    "data.val.num_frames=5",
    "data.val.lq_size=[24,24]",
    "arch.num_feat=8",
    "arch.num_extract_block=1",
    "arch.num_reconstruct_block=1",
    "arch.deformable_groups=2",
    "model.scheduler.periods=[8]",
    "model.scheduler.restart_weights=[1.0]",
    "model.evaluation.log_images=1",
]


def offline_run_ids(run_dirs: list[Path]) -> list[str]:
    """The W&B run id of each offline run directory, from its ``run-<id>.wandb`` file (the directory's
    name is no guide: wandb appends ``-part-1`` to one taken in the same second)."""
    return [next(d.glob("run-*.wandb")).name[len("run-") : -len(".wandb")] for d in run_dirs]


def compose_config(name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as the Hydra app would, with its run directory at ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.root_dir = str(run_dir.parent)
        cfg.paths.log_dir = str(run_dir.parent)
        cfg.paths.output_dir = str(run_dir)
        del cfg.hydra
    return cfg


def train_tiny_checkpoint(run_dir: Path, overrides: list[str], alpha: float = 0.01) -> Path:
    """``last.ckpt`` of a one-step ``vsrlab-train`` run (:data:`FAST` + ``overrides``) with its weights
    perturbed (``alpha``, 5x that for the fusion): one step leaves the sliding-window net at its init,
    the bicubic of the centre frame (fusion passes the centre, the residual starts at zero); perturbed,
    every window frame matters."""
    from vsrlab.apps.train import train

    overrides = [*FAST, *overrides, "trainer.max_steps=1", "trainer.val_check_interval=1",
                 "data.val.num_clips=1", "test=false", "callbacks=model_checkpoint"]  # fmt: skip
    train(compose_config("train", overrides, run_dir))
    GlobalHydra.instance().clear()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for key, value in saved["state_dict"].items():
        if key.startswith("net.") and value.is_floating_point():
            value.add_(torch.randn(value.shape, generator=gen), alpha=5 * alpha if "fusion" in key else alpha)
    torch.save(saved, ckpt)
    return ckpt


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sliding-window run (5-frame windows, G x N deformable alignment) whose only checkpoint is
    its perturbed ``last.ckpt`` (:func:`train_tiny_checkpoint`; the best ones are removed)."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    train_tiny_checkpoint(run, ["arch.num_frame=5", "data.train.num_frames=5"], alpha=0.05)
    for best in (run / "checkpoints").glob("best*.ckpt"):
        best.unlink()
    return run


@pytest.fixture
def make_cfg(tmp_path: Path):
    """``make_cfg(name='train', overrides=[...], run='run')`` -> composed config."""

    def _make(name: str = "train", overrides: list[str] | None = None, run: str = "run") -> DictConfig:
        return compose_config(
            name, [*FAST, *(overrides or [])] if name == "train" else list(overrides or []), tmp_path / run
        )

    yield _make
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``bf16_training`` skip on a CPU without native bf16: there bf16 autocast runs
    PyTorch's reference convolution (~30x slower), minutes per test. They run where oneDNN has bf16
    kernels (AVX-512 BF16 / AMX) and on CUDA machines."""
    from vsrlab.utils.precision import cpu_has_native_bf16

    if cpu_has_native_bf16() or torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason="bf16 training on a CPU without native bf16 (PyTorch's slow reference kernel)"
    )
    for item in items:
        if "bf16_training" in item.keywords:
            item.add_marker(skip)
