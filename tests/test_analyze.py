"""vsrlab-analyze end to end: each tool on a trained checkpoint and on official-weight layouts, inputs from
data configs and files, W&B images, and the errors that name the bad value."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from conftest import compose_config, train_tiny_checkpoint
from vsrlab.apps.analyze import analyze
from vsrlab.cli.analyze import main
from vsrlab.utils.images import save_rgb

DATA = ["data.val.num_clips=2", "data.val.num_frames=5", "data.val.lq_size=[32,32]"]
QUIET = ["extras.print_config=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``last.ckpt`` of a one-step run of the tiny default network, perturbed so that every window frame
    matters."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("train") / "run", [], alpha=0.02)


def run_analyze(tmp_path: Path, overrides: list[str], run: str = "analyze") -> tuple[dict, Path]:
    logger = [] if "logger=wandb" in overrides else ["~logger"]  # files only, unless the test reads W&B
    cfg = compose_config("analyze", [*QUIET, *logger, *DATA, *overrides], tmp_path / run)
    try:
        return analyze(cfg), tmp_path / run
    finally:
        GlobalHydra.instance().clear()


def test_lam_of_a_checkpoint_on_a_synthetic_clip_logs_to_wandb(trained, tmp_path):
    numbers, out = run_analyze(
        tmp_path,
        [
            f"ckpt_path={trained}",
            "tool=lam",
            "tool.fold=6",
            "tool.steps_per_batch=3",
            "tool.row=40",
            "tool.col=44",
            "tool.window_size=12",
            "logger=wandb",
        ],  # fmt: skip
    )
    saved = json.loads((out / "lam.json").read_text())
    assert saved == numbers
    assert (numbers["row"], numbers["col"], numbers["window_size"]) == (40, 44, 12)
    # the tiny default network sees 3 frames; every one of them contributes, the shares sum to 1
    shares = np.array(numbers["frame_shares"])
    assert shares.shape == (3,) and shares.sum() == pytest.approx(1.0, abs=1e-6) and (shares > 0).all()
    assert set(numbers["share_by_distance"]) == {"0", "1"}
    assert numbers["share_by_distance"]["0"] == pytest.approx(shares[1])
    attribution_map = np.load(out / "lam_map.npy")
    assert attribution_map.shape == (3, 32, 32) and attribution_map.max() == 1.0
    assert 0 < numbers["diffusion_index"] < 100
    assert [Path(p).name for p in numbers["figures"]] == ["lam.png", "lam_frames.png"]
    logged = sorted(p.name.split("_")[0] for p in out.rglob("media/images/analyze/lam/*.png"))
    assert logged == ["lam", "lam"]  # lam_<step>_<hash>.png and lam_frames_<step>_<hash>.png


def test_offsets_of_a_checkpoint_against_the_true_flow(trained, tmp_path):
    numbers, out = run_analyze(tmp_path, [f"ckpt_path={trained}", "tool=offsets"])
    saved = json.loads((out / "offsets.json").read_text())
    assert saved["network"] == "SlidingWindowVSR" and saved["reference_flow"]
    assert list(saved["modules"]) == ["dcn"]
    assert all(Path(p).is_file() for p in numbers["figures"]) and len(numbers["figures"]) == 4


def test_offsets_on_frames_without_flow_take_spynet_as_the_reference(trained, tmp_path):
    """``tool.spynet_path``: a frame folder has no true flow; SPyNet's flow from the centre frame (the
    one frozen-SPyNet helper) is the reference the offsets are compared with."""
    from vsrlab.apps.analyze import spynet_flows
    from vsrlab.archs.spynet_arch import SPyNet

    weights = tmp_path / "spynet.pth"
    torch.save({"params": SPyNet().state_dict()}, weights)  # BasicSR's layout, random weights
    folder = tmp_path / "frames"
    frames = (np.random.default_rng(1).random((5, 32, 32, 3)) * 255).astype(np.uint8)
    for i, frame in enumerate(frames):
        save_rgb(folder / f"{i:08d}.png", frame)
    without, _ = run_analyze(tmp_path, [f"ckpt_path={trained}", "tool=offsets", f"input={folder}"], "plain")
    numbers, out = run_analyze(
        tmp_path, [f"ckpt_path={trained}", "tool=offsets", f"input={folder}", f"tool.spynet_path={weights}"]
    )
    assert not without["reference_flow"] and numbers["reference_flow"]
    assert json.loads((out / "offsets.json").read_text())["reference_flow"]
    lq = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    spynet = SPyNet(weights).eval()
    with torch.no_grad():  # centre frame 2 to every frame, computed here without the helper
        expected = spynet(lq[2:3].expand(5, -1, -1, -1).contiguous(), lq)
    torch.testing.assert_close(spynet_flows(lq, str(weights)), expected, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="tool.spynet_path: no SPyNet weights at .*missing.pth"):
        run_analyze(tmp_path, [f"ckpt_path={trained}", "tool=offsets", f"input={folder}",
                               f"tool.spynet_path={tmp_path / 'missing.pth'}"], "missing")  # fmt: skip


def test_semantics_of_a_checkpoint(trained, tmp_path):
    numbers, out = run_analyze(
        tmp_path,
        [f"ckpt_path={trained}", "tool=semantics", "tool.layer=reconstruction", "tool.method=pca",
         "tool.num_clips=2",
         "tool.degradations=[{name: BI}, {name: blur, sigma: 2.0}, {name: noise, sigma: 20}]"],
    )  # fmt: skip
    saved = json.loads((out / "semantics.json").read_text())
    assert saved["n_samples"] == 6 and saved["layer"] == "reconstruction"
    assert [d["name"] for d in saved["degradations"]] == ["BI", "blur", "noise"]
    assert saved["verdict"] in ("degradation", "content") and (out / "semantics.png").is_file()
    assert numbers["scores"] == saved["scores"]


def _official(tmp_path: Path, arch: str, overrides: list[str]) -> Path:
    """A BasicSR-layout weights file ({'params': state_dict}) of a small ``arch`` with random weights."""
    cfg = compose_config("analyze", [f"arch={arch}", *overrides], tmp_path / "build")
    GlobalHydra.instance().clear()
    net = instantiate({k: v for k, v in cfg.arch.items() if k not in ("pretrained", "pretrained_strict")})
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen), alpha=0.02)
    path = tmp_path / f"{arch}_official.pth"
    torch.save({"params": net.state_dict()}, path)
    return path


def test_official_edvr_weights_offsets_per_pyramid_level(tmp_path):
    small = ["arch.num_feat=8", "arch.deformable_groups=2", "arch.num_extract_block=1",
             "arch.num_reconstruct_block=1"]  # fmt: skip
    weights = _official(tmp_path, "edvr", small)
    numbers, _ = run_analyze(tmp_path, ["arch=edvr", *small, f"arch.pretrained={weights}", "tool=offsets"])
    modules = numbers["modules"]
    # PCD: three pyramid levels and the cascading alignment, each compared at its resolution
    assert len(modules) == 4 and all(name.startswith("pcd_align.") for name in modules)


def test_official_basicvsr_weights_lam_over_the_whole_clip(tmp_path):
    small = ["arch.num_feat=8", "arch.num_block=1"]
    weights = _official(tmp_path, "basicvsr", small)
    numbers, out = run_analyze(
        tmp_path,
        [
            "arch=basicvsr",
            *small,
            f"arch.pretrained={weights}",
            "tool=lam",
            "tool.fold=3",
            "tool.frame=1",
        ],  # fmt: skip
    )
    # a recurrent network: the map covers all 5 frames of the clip; output frame 1 was analysed
    assert numbers["input_frames"] == 5 and numbers["output_frame"] == 1
    assert np.load(out / "lam_map.npy").shape == (5, 32, 32)
    assert set(numbers["share_by_distance"]) == {"0", "1", "2", "3"}
    assert sum(numbers["frame_shares"]) == pytest.approx(1.0, abs=1e-6)


def test_lam_of_an_image_file_is_a_static_window(trained, tmp_path):
    image = (np.random.default_rng(0).random((24, 28, 3)) * 255).astype(np.uint8)
    path = save_rgb(tmp_path / "frame.png", image)
    numbers, _ = run_analyze(tmp_path, [f"ckpt_path={trained}", f"input={path}", "tool=lam", "tool.fold=3"])
    assert numbers["clip"] == "frame" and numbers["input_frames"] == 3
    # the output is 96 x 112: the default window sits at the centre of the detector's grid
    assert (numbers["row"], numbers["col"]) == ((95 - 16) // 2, (111 - 16) // 2)


def test_errors_name_the_bad_value(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="input: no image, video or frame folder at .*missing"):
        run_analyze(tmp_path, [f"ckpt_path={trained}", f"input={tmp_path / 'missing'}"])
    with pytest.raises(IndexError, match="clip=7: the test split .* has 2 clips"):
        run_analyze(tmp_path, [f"ckpt_path={trained}", "clip=7"])
    with pytest.raises(ValueError, match="frame=9 outside the clip's 5 frames"):
        run_analyze(tmp_path, [f"ckpt_path={trained}", "tool.frame=9"])
    with pytest.raises(ValueError, match="SlidingWindowVSR has no submodule 'decoder'"):
        run_analyze(tmp_path, [f"ckpt_path={trained}", "tool=semantics", "tool.layer=decoder"])


def test_console_script_runs_the_hydra_app(trained, tmp_path, monkeypatch):
    run = tmp_path / "cli_run"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "vsrlab-analyze",
            f"ckpt_path={trained}",
            "tool=lam",
            "tool.fold=2",
            "~logger",
            *DATA,
            *QUIET,
            f"hydra.run.dir={run}",
        ],  # fmt: skip
    )
    GlobalHydra.instance().clear()
    main()  # as the console script runs it
    saved = json.loads((run / "lam.json").read_text())
    assert saved["fold"] == 2 and len(saved["frame_shares"]) == 3 and (run / "lam.png").is_file()
