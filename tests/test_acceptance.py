"""The default experiment as `make train` runs it (about 3 minutes on 2 cores) and `make sweep-demo`
(about 2 minutes): slow tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_default_training_beats_bicubic_by_at_least_1db(tmp_path):
    exe = Path(sys.executable).parent / "vsrlab-train"
    proc = subprocess.run(
        [
            str(exe),
            f"paths.log_dir={tmp_path}",
            "run_name=default",
            "extras.print_config=false",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "train" / "runs" / "default" / "metrics.json").read_text())
    assert metrics["global_step"] == 500
    assert metrics["val"]["val/psnr_gain"] >= 1.0, metrics["val"]
    test = metrics["test"]["mean"]
    assert test["psnr"] - test["psnr_bicubic"] >= 1.0 and test["ssim"] > 0


def test_make_sweep_demo_runs_the_grid_then_only_reports(tmp_path):
    """`make sweep-demo` twice: 4 jobs through the submitit local launcher and a report; the second
    time every job is skipped as finished and the report is printed again."""
    import csv
    import os
    import shutil

    repo = Path(__file__).resolve().parents[1]
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {
        **os.environ,
        "VSRLAB_ROOT": str(tmp_path),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "ARGS": "extras.print_config=false trainer.enable_progress_bar=false",
    }
    sweep = tmp_path / "logs" / "train" / "multiruns" / "sweep_demo"
    first = subprocess.run(
        [make, "-C", str(repo), "sweep-demo"], capture_output=True, text=True, timeout=900, env=env
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == [
        "deformable_groups=1,num_offsets=1",
        "deformable_groups=1,num_offsets=9",
        "deformable_groups=4,num_offsets=1",
        "deformable_groups=4,num_offsets=9",
    ]
    assert list((sweep / ".submitit").iterdir()), "jobs ran through submitit"
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["status"] for r in rows] == ["done"] * 4 and {r["steps"] for r in rows} == {"40"}
    assert all(float(r["best val PSNR"]) > 20 for r in rows)
    for name in ("heatmap_psnr.png", "heatmap_gain_per_mparam.png", "diversity_vs_psnr.png", "report.md"):
        assert (sweep / name).stat().st_size > 0, name
    stamps = {j: (sweep / j / "metrics.json").stat().st_mtime_ns for j in jobs}

    second = subprocess.run(
        [make, "-C", str(repo), "sweep-demo"], capture_output=True, text=True, timeout=300, env=env
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "4 finished (skipped), 0 to run" in second.stdout + second.stderr
    assert {j: (sweep / j / "metrics.json").stat().st_mtime_ns for j in jobs} == stamps
    assert "deformable_groups=4,num_offsets=9" in second.stdout  # the report again
    assert json.loads((sweep / "sweep.json").read_text())["launches"][-1]["launched"] == []
