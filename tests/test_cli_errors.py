"""User errors end a run with one short message naming the culprit (issue 25); the traceback only with
``HYDRA_FULL_ERROR=1`` or ``extras.traceback=true``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

BIN = Path(sys.executable).parent


def _run(app: str, args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true", **env})
    return subprocess.run(
        [str(BIN / f"vsrlab-{app}"), *args, f"paths.log_dir={tmp_path}", "extras.print_config=false"],
        capture_output=True, text=True, timeout=300, env=environ,
    )  # fmt: skip


def _messages(stderr: str) -> list[str]:
    """stderr without the third-party warnings a run may print before it fails, and Lightning's two lines
    on the accelerator (an evaluation builds its data after the Trainer)."""
    noise = (
        "UserWarning",
        "warnings.warn",
        "srun",
        "_pytree",
        "LeafSpec",
        "GPU available: ",
        "TPU available: ",
    )
    return [line for line in stderr.splitlines() if line.strip() and not any(n in line for n in noise)]


@pytest.mark.parametrize(
    ("app", "args", "culprit"),
    [
        ("eval", ["ckpt_path={tmp}/missing.ckpt"], "checkpoint not found: {tmp}/missing.ckpt"),
        ("eval", ["ckpt_path={tmp}/broken.ckpt"], "{tmp}/broken.ckpt"),
        (
            "infer",
            ["arch=bicubic", "input={tmp}/notes.txt", "output={tmp}/out"],
            "cannot open video {tmp}/notes.txt",
        ),
        ("train", ["+arch.num_feats=16", "trainer.max_steps=1"], "unexpected keyword argument 'num_feats'"),
        (
            "eval",
            ["data=vid4", "data.root={tmp}/Vid4", "arch=bicubic"],
            "LR frame {tmp}/Vid4/BIx4/city/0001.png is 12x10 and GT frame {tmp}/Vid4/GT/city/0001.png "
            "is 40x32: not x4",
        ),
    ],
)
def test_a_user_error_is_one_line_naming_the_culprit(app, args, culprit, tmp_path):
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "broken.ckpt").write_bytes(b"PK\x03\x04 truncated")
    for clip, lr in (("calendar", (8, 10)), ("city", (10, 12))):  # city's LR is not x4 of its GT
        for folder, (h, w) in (("GT", (32, 40)), ("BIx4", lr)):
            (tmp_path / "Vid4" / folder / clip).mkdir(parents=True, exist_ok=True)
            for t in range(3):
                cv2.imwrite(
                    str(tmp_path / "Vid4" / folder / clip / f"{t:04d}.png"), np.zeros((h, w, 3), np.uint8)
                )
    proc = _run(app, [a.format(tmp=tmp_path) for a in args], tmp_path)
    lines = _messages(proc.stderr)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 2 and lines[0].startswith(f"vsrlab-{app}: error: "), proc.stderr[-2000:]
    assert culprit.format(tmp=tmp_path) in lines[0] and "HYDRA_FULL_ERROR=1" in lines[1]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_the_traceback_on_request(tmp_path):
    for env, args in (({"HYDRA_FULL_ERROR": "1"}, []), ({}, ["extras.traceback=true"])):
        proc = _run("eval", [f"ckpt_path={tmp_path}/missing.ckpt", *args], tmp_path, **env)
        assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr, proc.stderr[
            -2000:
        ]
        assert "FileNotFoundError: checkpoint not found" in proc.stderr
