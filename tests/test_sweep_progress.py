"""A multirun shows progress (issue 25): a line per job as it starts and ends, a summary, job logs linked
from each job's run directory, and no stray `.submitit/%j` folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsrlab.run.progress import SweepProgress

BIN = Path(sys.executable).parent


def _job(sweep: Path, name: str, status: dict | None, best: float | None = None) -> None:
    (sweep / name).mkdir(parents=True, exist_ok=True)
    if status is not None:
        (sweep / name / "status.json").write_text(json.dumps(status))
    if best is not None:
        (sweep / name / "metrics.json").write_text(json.dumps({"best": {"score": best}}))
        (sweep / name / "done").touch()


def test_lines_for_starts_ends_and_a_summary(tmp_path):
    lines: list[str] = []
    progress = SweepProgress(tmp_path, ["a", "b", "c"], lines.append, poll_s=3600)
    _job(tmp_path, "a", {"state": "running", "step": 0, "max_steps": 4})
    progress.poll()
    progress.poll()  # nothing new: nothing printed
    assert lines == [f"a: started at step 0 ({tmp_path / 'a'})"]
    _job(tmp_path, "a", {"state": "done", "step": 4, "max_steps": 4}, best=27.456)
    _job(tmp_path, "b", {"state": "failed", "step": 2, "max_steps": 4, "error": "DataError: bad frame x.png"})
    with progress:
        pass
    assert lines[1:] == [
        f"a: done at step 4/4, best val PSNR 27.46 dB ({tmp_path / 'a'})",
        f"b: failed at step 2/4: DataError: bad frame x.png ({tmp_path / 'b'})",
        f"3 jobs of {tmp_path}: 1 done, 1 failed, 1 not started",
    ]


@pytest.mark.slow  # two processes of submitit's local launcher, about 80 s on 2 cores
def test_a_local_multirun_prints_progress_and_links_job_logs(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = ["-m", "hydra/launcher=local", "arch.num_feat=8,16", "run_name=grid", f"paths.log_dir={tmp_path}",
            "trainer.max_steps=2", "trainer.val_check_interval=2", "test=false", "logger=csv",
            "data.val.num_clips=1", "data.train.lq_size=[16,16]", "data.batch_size=2"]  # fmt: skip
    proc = subprocess.run(
        [str(BIN / "vsrlab-train"), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    sweep = tmp_path / "train" / "multiruns" / "grid"
    for job in ("num_feat=8", "num_feat=16"):
        assert f"{job}: done at step 2/2, best val PSNR" in out
        err, log = sweep / job / "job.err", sweep / job / "job.out"
        assert err.is_symlink() and err.resolve().parent.parent == sweep / ".submitit"
        assert log.is_symlink() and log.resolve().parent == err.resolve().parent
        # Lightning's messages go through the job's logging: its stdout and the run's train.log
        assert "max_steps=2` reached" in log.read_text()
        assert "max_steps=2` reached" in (sweep / job / "train.log").read_text()
    assert f"2 jobs of {sweep}: 2 done" in out
    assert not (sweep / ".submitit" / "%j").exists()
