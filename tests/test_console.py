"""A quiet console (issue 25): a run prints a few lines on what it is, not the whole config, and none of
the known third-party noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
NOISE = (
    "💡 Tip",
    "anonymous setting",
    "The `srun` command is available",
    "LeafSpec",
    "`weights_only` was not set",
    "CONFIG",
)


def test_a_run_prints_its_summary_and_no_noise(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(
        [str(BIN / "vsrlab-train"), "debug=fdr", f"paths.log_dir={tmp_path}", "run_name=quiet"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    lines = out.splitlines()
    before_bar = lines[: next(i for i, line in enumerate(lines) if "━" in line and "/" in line)]
    assert len(before_bar) <= 30, "\n".join(before_bar)
    assert lines[0] == "vsrlab-train: arch   SlidingWindowVSR (G=4 x N=9)", out[:2000]
    assert lines[1].split() == ["data", "SyntheticVideoDataset"] and lines[2].split()[:2] == ["steps", "500"]
    assert lines[3].split() == ["run", str(tmp_path / "debug" / "runs" / "quiet")]
    assert not [n for n in NOISE if n in out], [line for line in lines if any(n in line for n in NOISE)]
    # the progress bar counts optimizer steps of max_steps (fast_dev_run: 1), without the logger version
    bar = [line for line in lines if "━" in line and "/" in line]
    assert bar and bar[0].split()[0] == "step" and "1/1" in bar[0], bar
    assert "v_num" not in out and "Epoch" not in out
    assert "Test metric" not in out  # the clip table alone, not Lightning's too
    # the whole config is still kept in the run directory
    assert "SlidingWindowVSR" in (tmp_path / "debug" / "runs" / "quiet" / "resolved_config.yaml").read_text()


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_each_app_has_its_own_help():
    apps = ("train", "eval", "infer", "analyze", "report", "export")
    procs = {  # side by side: each spends its seconds importing
        app: subprocess.Popen(
            [str(BIN / f"vsrlab-{app}"), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )  # fmt: skip
        for app in apps
    }
    for app, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        lines = stdout.strip().splitlines()
        assert lines[0].startswith(f"vsrlab-{app}: ") and len(lines) <= 30, stdout
        assert any(line.startswith("Required:") for line in lines) and "Examples:" in lines
        examples = lines[lines.index("Examples:") + 1 :]
        assert sum(line.startswith(f"  vsrlab-{app} ") for line in examples) == 3, stdout
        assert "powered by Hydra" not in stdout
