"""End-to-end training, evaluation, checkpoints and exact resume."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import offline_run_ids
from vsrlab.apps.evaluate import evaluate
from vsrlab.apps.train import train
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.metrics import calculate_psnr
from vsrlab.ops.resize import matlab_imresize
from vsrlab.utils.figures import png_text
from vsrlab.utils.images import to_uint8_hwc


def test_fast_dev_run_trains_validates_and_tests(make_cfg, tmp_path):
    results = train(make_cfg(overrides=["debug=fdr"]))
    assert results["global_step"] == 1
    assert not (tmp_path / "run" / "checkpoints").exists()  # fast_dev_run writes nothing


def test_training_writes_checkpoints_metrics_logs_and_images(make_cfg, tmp_path):
    results = train(make_cfg())
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert Path(results["best"]["ckpt_path"]).is_file() and results["best"]["monitor"] == "val/psnr"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["global_step"] == 4 and np.isfinite(saved["val"]["val/psnr"])
    assert set(saved["test"]["clips"]) == {"val_00000", "val_00001"}
    assert all(row["frames"] == 5 for row in saved["test"]["clips"].values())
    assert (run / "csv").is_dir() and list((run / "csv").glob("*/metrics.csv"))
    images = sorted((run / "images" / "val").glob("*.png"))
    frames = [png_text(p) for p in images if "_offsets_" not in p.name]
    offsets = [png_text(p) for p in images if "_offsets_" in p.name]
    assert frames and offsets  # labelled: title, captions with PSNRs, colour wheel and colour bar
    assert re.fullmatch(r"val_0000\d, frame \d+, step \d \(PSNR: RGB\)", frames[0]["Title"])
    assert re.fullmatch(r"bicubic\n\d+\.\d\d dB \| output\n\d+\.\d\d dB \| GT\n ", frames[0]["Description"])
    assert offsets[0]["Comment"].startswith("colour bar: diversity (px); colour wheel: hue = direction")
    assert not list((run / "checkpoints").glob(".*tmp*"))  # atomic writes leave no temporaries


def test_one_step_number_everywhere(make_cfg, tmp_path):
    # every record of a measurement names the optimizer steps done before it: validations after steps 1
    # and 2, the test after step 2 (Lightning's own logger step lags by one inside the training loop)
    overrides = ["trainer.max_steps=2", "trainer.val_check_interval=1", "model.evaluation.save_images=false"]
    results = train(make_cfg(overrides=overrides))
    run = tmp_path / "run"
    (log,) = (run / "csv").glob("*/metrics.csv")
    rows = list(csv.DictReader(log.open()))
    assert [int(r["step"]) for r in rows if r.get("val/psnr")] == [1, 2]
    assert [int(r["step"]) for r in rows if r.get("test/psnr")] == [2]
    images = (run / "images" / "val").glob("step*.png")
    assert sorted({p.name[4:11] for p in images}) == ["0000001", "0000002"]
    assert results["best"]["ckpt_path"].split("/")[-1].startswith("best_step0000002_")
    assert json.loads((run / "status.json").read_text())["step"] == 2
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 2
    steps = [v["step"] for v in json.loads((run / "metrics.json").read_text())["val_history"]]
    assert steps == [1, 2]


def test_refuses_to_overwrite_a_run_and_requires_a_checkpoint_to_resume(make_cfg):
    train(make_cfg(overrides=["test=false"]))
    with pytest.raises(FileExistsError, match="ckpt_path=last"):
        train(make_cfg(overrides=["test=false", "ckpt_path=null"]))
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        train(make_cfg(overrides=["ckpt_path=last"], run="other"))
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        train(make_cfg(overrides=["ckpt_path=/nonexistent/missing.ckpt"], run="third"))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_resume_mid_epoch_equals_uninterrupted_run_and_continues_wandb_run(make_cfg, tmp_path):
    # batch 2, 12 clips per epoch -> 6 steps per epoch; the interrupted run stops at step 4, mid-epoch
    common = ["trainer.max_steps=8", "trainer.val_check_interval=4", "data.train.num_clips=12", "test=false"]
    full = train(make_cfg(overrides=common, run="full"))
    train(make_cfg(overrides=[*common, "trainer.max_steps=4", "logger=default"], run="part"))
    resumed = train(make_cfg(overrides=[*common, "ckpt_path=last", "logger=default"], run="part"))

    assert resumed["global_step"] == full["global_step"] == 8
    a, b = (
        _weights(tmp_path / "full/checkpoints/last.ckpt"),
        _weights(tmp_path / "part/checkpoints/last.ckpt"),
    )
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-7, msg=f"{key} differs after resume")
    assert resumed["val"]["val/psnr"] == pytest.approx(full["val"]["val/psnr"], abs=1e-4)

    runs = sorted((tmp_path / "part" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, "each session writes one offline W&B run"
    # the id inside each session's directory (wandb adds -part-1 to a directory name taken in the same second)
    assert offline_run_ids(runs) == ["part", "part"], "the resumed session logged to a different W&B run"


def test_eval_bicubic_reproduces_direct_computation(make_cfg, tmp_path):
    overrides = [
        "extras.print_config=false",
        "data.val.num_clips=2",
        "data.val.num_frames=4",
        "data.val.lq_size=[20,20]",
        "trainer.enable_progress_bar=false",
    ]
    results = evaluate(make_cfg("eval", overrides=overrides))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["mean"] == pytest.approx(results["mean"]) and saved["arch"] == "vsrlab.archs.Bicubic"
    assert saved["protocol"] == {"test_y_channel": False, "crop_border": 0}

    data = SyntheticVideoDataset("val", num_clips=2, num_frames=4, lq_size=(20, 20), seed=0)
    per_clip = []
    for i in range(2):
        s = data[i]
        lr, gt = to_uint8_hwc(s["lq"]), to_uint8_hwc(s["gt"])
        per_clip.append(
            np.mean([calculate_psnr(matlab_imresize(low, 4), g) for low, g in zip(lr, gt, strict=True)])
        )
        assert saved["clips"][f"val_{i:05d}"]["psnr"] == pytest.approx(per_clip[-1], abs=1e-3)
    assert saved["mean"]["psnr"] == pytest.approx(np.mean(per_clip), abs=1e-3)
    assert saved["mean"]["psnr"] == pytest.approx(saved["mean"]["psnr_bicubic"], abs=1e-9)


def test_eval_of_a_checkpoint_matches_training_test_scores(make_cfg, tmp_path):
    trained = train(make_cfg())
    cfg = make_cfg(
        "eval",
        overrides=[
            "extras.print_config=false",
            f"ckpt_path={trained['best']['ckpt_path']}",
            "data.val.num_clips=2",
            "data.val.num_frames=5",
            "data.val.lq_size=[24,24]",
            "trainer.enable_progress_bar=false",
        ],
        run="eval",
    )
    results = evaluate(cfg)
    assert results["arch"] == "vsrlab.archs.SlidingWindowVSR"
    assert results["mean"]["psnr"] == pytest.approx(trained["test"]["mean"]["psnr"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        evaluate(make_cfg("eval", overrides=["ckpt_path=nope.ckpt"], run="eval2"))


def test_cli_multirun_runs_every_job(tmp_path):
    """`vsrlab-train -m` resolves the sweep directory before any job and runs each job to the end."""
    from conftest import FAST

    exe = Path(sys.executable).parent / "vsrlab-train"
    cmd = [
        str(exe),
        "-m",
        "experiment=align_none,align_flow",
        "run_name=sweep",
        f"paths.log_dir={tmp_path}",
        "test=false",
        *FAST,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((tmp_path / "train" / "multiruns" / "sweep").glob("*/metrics.json"))
    assert [j.parent.name for j in jobs] == ["experiment=align_flow", "experiment=align_none"]
    assert all(json.loads(j.read_text())["global_step"] == 4 for j in jobs)


def test_eval_of_official_weights_via_arch_pretrained(make_cfg, tmp_path):
    """`vsrlab-eval arch=<name> arch.pretrained=<BasicSR file>`: the weights are used, not a random init."""
    from vsrlab.archs import BasicVSR

    src = BasicVSR(num_feat=8, num_block=1)
    with torch.no_grad():
        src.conv_last.weight.zero_()
        src.conv_last.bias.fill_(0.5)  # output = 0.5 + bilinear upsampling of the input
    torch.save({"params": src.state_dict()}, tmp_path / "basicvsr.pth")
    overrides = [
        "extras.print_config=false",
        "data.val.num_clips=1",
        "data.val.num_frames=3",
        "data.val.lq_size=[16,16]",
        "trainer.enable_progress_bar=false",
        "arch=basicvsr",
        "arch.num_feat=8",
        "arch.num_block=1",
        f"arch.pretrained={tmp_path / 'basicvsr.pth'}",
    ]
    results = evaluate(make_cfg("eval", overrides=overrides))
    s = SyntheticVideoDataset("val", num_clips=1, num_frames=3, lq_size=(16, 16), seed=0)[0]
    with torch.no_grad():
        expected = src(s["lq"].unsqueeze(0))[0]
    psnr = np.mean(
        [calculate_psnr(to_uint8_hwc(o), to_uint8_hwc(g)) for o, g in zip(expected, s["gt"], strict=True)]
    )
    assert results["mean"]["psnr"] == pytest.approx(psnr, abs=1e-3)


def test_a_run_that_cannot_start_is_marked_failed_naming_the_error(make_cfg, tmp_path):
    cfg = make_cfg(overrides=["+arch.not_an_argument=1"])
    with pytest.raises(Exception, match="not_an_argument"):
        train(cfg)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 0
    assert "not_an_argument" in status["error"]


def test_eval_of_a_checkpoint_scores_the_clips_its_run_was_tested_on(make_cfg, tmp_path):
    """`vsrlab-eval ckpt_path=...` without data overrides takes the data of the checkpoint's run (here 3
    validation clips of 5 frames, 24x24, not eval.yaml's default); a data override chooses other data."""
    data = ["data.val.num_clips=3", "data.val.num_frames=5", "data.val.lq_size=[24,24]"]
    trained = train(make_cfg(overrides=[*data, "trainer.max_steps=2", "test=true"], run="trained"))
    ckpt = trained["best"]["ckpt_path"]
    own = evaluate(make_cfg("eval", overrides=[f"ckpt_path={ckpt}", "extras.print_config=false"], run="own"))
    assert sorted(own["clips"]) == sorted(trained["test"]["clips"]) and len(own["clips"]) == 3
    assert own["mean"]["psnr"] == pytest.approx(trained["test"]["mean"]["psnr"], abs=1e-6)
    other = evaluate(
        make_cfg("eval", overrides=[f"ckpt_path={ckpt}", "data.val.num_clips=2", "data.val.num_frames=3",
                                    "data.val.lq_size=[16,16]", "extras.print_config=false"], run="other")
    )  # fmt: skip
    assert len(other["clips"]) == 2 and other["mean"]["psnr"] != pytest.approx(own["mean"]["psnr"])


def test_tensorboard_logger_records_scores_and_pictures_at_the_steps(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = ["logger=[csv,tensorboard]", "trainer.max_steps=2", "trainer.val_check_interval=1"]
    train(make_cfg(overrides=overrides))
    events = tmp_path / "run" / "tensorboard" / "version_0"  # the fit's event file, and the test's
    acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0}).Reload()
    psnr = acc.Scalars("val/psnr")
    assert [e.step for e in psnr] == [1, 2]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert psnr[-1].value == pytest.approx(saved["val_history"][-1]["psnr"], abs=1e-4)
    assert [e.step for e in acc.Scalars("test/psnr")] == [2]
    pictures = [tag for tag in acc.Tags()["images"] if tag.startswith("val/")]
    assert pictures and {e.step for e in acc.Images(pictures[0])} == {1, 2}
