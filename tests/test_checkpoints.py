"""Checkpoints that cannot be read: one error naming the file everywhere, the previous version kept
when last.ckpt is replaced, and automatic resumption from the newest readable checkpoint; vsrlab's
checkpoints are read by ``torch.load(weights_only=True)`` and ``VSRModule.load_from_checkpoint``."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vsrlab.apps.evaluate import evaluate
from vsrlab.apps.train import train
from vsrlab.archs import load_pretrained
from vsrlab.archs.sliding_window_arch import SlidingWindowVSR
from vsrlab.engine import load_model
from vsrlab.models import VSRModule
from vsrlab.run.checkpoints import checkpoint_step, previous_version
from vsrlab.utils.checkpoint import CheckpointError, read_checkpoint

BIN = Path(sys.executable).parent


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint" + bytes(range(256)) * 4)
    return path


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "text"])
def test_every_reader_names_the_unreadable_file(make_cfg, tmp_path, damage):
    trained = train(make_cfg(overrides=["test=false"]))
    path = tmp_path / f"{damage}.ckpt"
    path.write_bytes(Path(trained["best"]["ckpt_path"]).read_bytes())
    if damage == "truncated":
        _truncate(path)
    elif damage == "corrupt":
        _corrupt(path)
    else:
        path.write_text("7 days\n")  # the legacy reader's "invalid literal for int()"
    pattern = f"cannot read checkpoint {path}"
    with pytest.raises(CheckpointError, match=pattern):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=pattern):
        evaluate(make_cfg("eval", overrides=[f"ckpt_path={path}", "extras.print_config=false"], run="eval"))
    with pytest.raises(CheckpointError, match=pattern):
        load_model(make_cfg("infer", overrides=[f"ckpt_path={path}", "input=x.mp4", "output=y"], run="infer"))
    with pytest.raises(CheckpointError, match=pattern):
        load_pretrained(SlidingWindowVSR(num_feat=8), path)
    with pytest.raises(CheckpointError, match=pattern):
        train(make_cfg(overrides=[f"ckpt_path={path}"], run="other"))


def test_cli_eval_of_a_corrupt_checkpoint_names_it(tmp_path):
    path = _corrupt(tmp_path / "broken.ckpt")
    proc = subprocess.run(
        [str(BIN / "vsrlab-eval"), f"ckpt_path={path}", f"paths.log_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    first = [line for line in proc.stderr.splitlines() if "error" in line][0]  # one line, no traceback
    assert first.startswith(f"vsrlab-eval: error: cannot read checkpoint {path}"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_replacing_last_keeps_the_previous_version(make_cfg, tmp_path):
    train(
        make_cfg(
            overrides=[
                "test=false",
                "trainer.max_steps=6",
                "trainer.val_check_interval=2",
                "model.scheduler.periods=[6]",
            ]
        )
    )
    folder = tmp_path / "run" / "checkpoints"
    assert checkpoint_step(folder / "last.ckpt") == 6
    assert previous_version(folder / "last.ckpt") == folder / "last.previous.ckpt"
    assert checkpoint_step(folder / "last.previous.ckpt") == 4
    assert not list(folder.glob(".*tmp*"))


def test_last_holds_the_newest_state_also_when_validation_did_not_improve(make_cfg, tmp_path):
    """With a learning rate of 0 no validation improves on the first: best stays at step 2 while
    last.ckpt follows every validation and the end of training (step 7, not a validation step)."""
    results = train(
        make_cfg(
            overrides=[
                "test=false",
                "trainer.max_steps=7",
                "trainer.val_check_interval=2",
                "model.optimizer.lr=0.0",
                "model.scheduler.eta_min=0.0",
                "model.scheduler.periods=[7]",
            ]
        )
    )
    folder = tmp_path / "run" / "checkpoints"
    assert checkpoint_step(results["best"]["ckpt_path"]) == 2
    assert checkpoint_step(folder / "last.ckpt") == 7 and checkpoint_step(folder / "last.previous.ckpt") == 6


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_auto_resume_falls_back_to_the_newest_readable_checkpoint(make_cfg, tmp_path, caplog, damage):
    common = [
        "test=false",
        "trainer.max_steps=8",
        "trainer.val_check_interval=2",
        "model.scheduler.periods=[8]",
        "callbacks.model_checkpoint.save_top_k=-1",
    ]
    train(make_cfg(overrides=[*common, "trainer.max_steps=6"]))  # as if stopped at step 6 ...
    run = tmp_path / "run"
    (run / "done").unlink()
    folder = run / "checkpoints"
    last = folder / "last.ckpt"
    if damage == "truncated":  # ... and its last.ckpt cut short
        _truncate(last)
    else:
        last.unlink()
    # the readable checkpoint with the highest step: best_step0000006_* (save_top_k=-1 keeps each)
    expected = max(checkpoint_step(p) for p in folder.glob("*.ckpt") if p != last)
    assert expected == 6
    with caplog.at_level(logging.WARNING):
        resumed = train(make_cfg(overrides=[*common, "ckpt_path=last"]))
    assert resumed["global_step"] == 8
    status = json.loads((run / "status.json").read_text())
    assert [s["start_step"] for s in status["sessions"]] == [0, 6]
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert str(last) in warning and "step 6" in warning
    if damage == "truncated":  # kept for inspection under a name that is never resumed
        assert (folder / "last.ckpt.unreadable").is_file()
        checkpoint_step(folder / "last.previous.ckpt")  # readable: the damaged file did not replace it


def test_a_run_whose_checkpoints_are_all_unreadable_is_not_restarted(make_cfg, tmp_path):
    train(make_cfg(overrides=["test=false"]))
    run = tmp_path / "run"
    (run / "done").unlink()
    for path in (run / "checkpoints").glob("*.ckpt"):
        _corrupt(path)
    with pytest.raises(CheckpointError, match="not starting .* over from step 0"):
        train(make_cfg(overrides=["test=false"]))
    assert all(p.suffix == ".ckpt" for p in (run / "checkpoints").iterdir())  # nothing renamed or removed
    assert json.loads((run / "status.json").read_text())["state"] == "done"


def test_load_from_checkpoint_reads_a_vsrlab_checkpoint_with_weights_only(make_cfg, tmp_path):
    """A vsrlab checkpoint holds tensors and plain Python objects only: ``torch.load``'s default
    ``weights_only=True`` reads it, and so does ``VSRModule.load_from_checkpoint(path)``; a checkpoint
    of an earlier version (an OmegaConf ``ListConfig`` among its hyperparameters) still loads where
    vsrlab reads it (``read_checkpoint``, ``vsrlab.engine.load_model``)."""
    freeze = "model.freeze=[{modules: [fusion], until_step: 2}]"
    train(make_cfg(overrides=["test=false", freeze, "+model.ema.decay=0.9"]))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["freeze"] == [{"modules": ["fusion"], "until_step": 2}]

    def assert_same_weights(model: VSRModule, checkpoint: dict) -> None:
        for name, module in (("net", model.net), ("net_ema", model.net_ema)):
            state = {
                k[len(name) + 1 :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(f"{name}.")
            }
            assert state and state.keys() == module.state_dict().keys()
            for key, value in module.state_dict().items():
                assert torch.equal(value, state[key]), f"{name}.{key} differs from the checkpoint"

    model = VSRModule.load_from_checkpoint(path)
    assert_same_weights(model, saved)
    assert model.hparams["freeze"] == saved["hyper_parameters"]["freeze"] and model.ema["decay"] == 0.9

    old = tmp_path / "old.ckpt"  # as written before the hyperparameters were plain containers
    hparams = {**saved["hyper_parameters"], "freeze": OmegaConf.create(saved["hyper_parameters"]["freeze"])}
    torch.save({**saved, "hyper_parameters": hparams}, old)
    with pytest.raises(pickle.UnpicklingError, match="ListConfig"):
        torch.load(old, map_location="cpu", weights_only=True)
    assert read_checkpoint(old)["hyper_parameters"]["freeze"] == saved["hyper_parameters"]["freeze"]
    assert_same_weights(load_model(make_cfg("eval", overrides=[f"ckpt_path={old}"], run="eval")), saved)
    assert_same_weights(VSRModule.load_from_checkpoint(old, weights_only=False), saved)
