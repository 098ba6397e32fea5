"""The default experiment, exactly as `make train` runs it (slow: about 3-4 minutes on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_default_training_beats_bicubic_by_at_least_1db(tmp_path):
    exe = Path(sys.executable).parent / "vsrlab-train"
    proc = subprocess.run([str(exe), f"paths.log_dir={tmp_path}", "run_name=default", "extras.print_config=false",
                           "trainer.enable_progress_bar=false"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "train" / "runs" / "default" / "metrics.json").read_text())
    assert metrics["global_step"] == 500
    assert metrics["val"]["val/psnr_gain"] >= 1.0, metrics["val"]
    test = metrics["test"]["mean"]
    assert test["psnr"] - test["psnr_bicubic"] >= 1.0 and test["ssim"] > 0
