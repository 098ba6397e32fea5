"""Sweeps on a real SLURM cluster (scripts/slurm_local.sh: slurmctld + slurmd + munge on this machine):
jobs submitted through hydra/launcher=slurm (submitit) finish, time limits and pre-emptions
(SIGUSR2 from SLURM, `scontrol requeue`, `scancel --signal`) end in resumed, finished jobs whose
weights equal an uninterrupted run's, and a relaunched sweep skips its finished jobs.

Marked ``slurm``: `make test-slurm` (CI) runs them; the fixture installs and starts the cluster
(root) and stops it afterwards.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAST, offline_run_ids

pytestmark = pytest.mark.slurm

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
# one CPU and little memory per job, whatever the defaults for GPU clusters are
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]


@pytest.fixture(scope="module")
def slurm_cluster():
    """The cluster of scripts/slurm_local.sh, started for these tests and stopped after them: its own
    state folder (readable by the munge user, so not under pytest's private tmp) and ports, beside
    any cluster a user started with the script's defaults."""
    if shutil.which("sbatch") is None and os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing it needs root (scripts/slurm_local.sh start)")
    env = {
        **os.environ,
        "VSRLAB_SLURM_DIR": "/tmp/vsrlab-slurm-tests",
        "VSRLAB_SLURMCTLD_PORT": "16917",
        "VSRLAB_SLURMD_PORT": "16918",
    }
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=900
    )
    assert started.returncode == 0, started.stdout + started.stderr
    conf = started.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
    assert Path(conf).is_file(), started.stdout
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, env=env, timeout=300)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


def _cancel_all_jobs(timeout: float = 60) -> None:
    """Cancel every job of this user and wait until the queue is empty."""
    subprocess.run(["scancel", f"--user={pwd.getpwuid(os.geteuid()).pw_name}"], capture_output=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _squeue_ids():
        time.sleep(0.5)


@pytest.fixture(autouse=True)
def _empty_queue(slurm_cluster):
    """Each test starts and ends with an empty queue: a failed test leaves no job behind."""
    _cancel_all_jobs()
    yield
    _cancel_all_jobs()


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}


def _job_logs(sweep: Path) -> str:
    logs = sorted((sweep / ".submitit").glob("*/*_log.*"))
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2500:]}" for p in logs[-6:])


class Launch:
    """`vsrlab-train -m ...` in its own process group; on a failure, cancels every job and kills it."""

    def __init__(self, args: list[str], sweep: Path) -> None:
        self.sweep = sweep
        self.proc = subprocess.Popen(
            [str(BIN / "vsrlab-train"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            start_new_session=True,
        )

    def abort(self, why: str) -> None:
        _cancel_all_jobs()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        out = self.proc.communicate()[0]
        raise AssertionError(f"{why}\n{out[-4000:]}\n{_job_logs(self.sweep)}")

    def wait(self, timeout: float) -> str:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.abort(f"the sweep did not finish within {timeout} s")
        if self.proc.returncode != 0:
            raise AssertionError(f"exit {self.proc.returncode}\n{out[-4000:]}\n{_job_logs(self.sweep)}")
        return out

    def wait_for_step(self, status: Path, step: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if status.is_file() and json.loads(status.read_text() or "{}").get("step", 0) >= step:
                return
            time.sleep(0.2)
        self.abort(f"{status} did not reach step {step}")


def _squeue_ids() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return out.split()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


# ------------------------------------------------------------------------- (a) and (d): a 2 x 2 grid
def test_a_sweep_runs_on_slurm_and_its_relaunch_skips_every_job(slurm_cluster, tmp_path):
    fast = [o for o in FAST if not o.startswith("arch.deformable_groups=")]
    args = [
        "-m",
        "arch.deformable_groups=1,2",
        "arch.num_offsets=1,9",
        *SLURM,
        "hydra.launcher.timeout_min=10",
        f"paths.log_dir={tmp_path}",
        "run_name=grid",
        "test=false",
        *fast,
    ]
    sweep = tmp_path / "train" / "multiruns" / "grid"
    Launch(args, sweep).wait(timeout=900)
    report = subprocess.run(
        [str(BIN / "vsrlab-report"), str(sweep)], capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr
    with open(sweep / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {(r["status"], r["steps"], r["pre-emptions"]) for r in rows} == {
        ("done", "4", "0")
    }
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert [(j["state"], j["preemptions"]) for j in manifest["jobs"]] == [("done", 0)] * 4
    submitted = sorted(p.name for p in (sweep / ".submitit").iterdir())
    assert len(submitted) >= 1  # an array of 4 tasks

    again = Launch(args, sweep).wait(timeout=300)
    assert "4 jobs, 4 finished (skipped), 0 to run" in again
    last = json.loads((sweep / "sweep.json").read_text())["launches"][-1]
    assert last["launched"] == [] and last["skipped"] == [j["subdir"] for j in manifest["jobs"]]
    assert sorted(p.name for p in (sweep / ".submitit").iterdir()) == submitted  # nothing submitted


# ---------------------------------------------------------- (b) time limit: pre-empted, bitwise resume
STEPS = 8000  # about 2 minutes of training on 2 cores: more than two 1-minute allocations can hold
LONG = [
    *FAST,
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=2000",
    f"model.scheduler.periods=[{STEPS}]",
    "test=false",
]


@pytest.mark.timeout(1800)
def test_a_job_with_a_one_minute_limit_is_preempted_resumes_and_equals_an_uninterrupted_run(
    slurm_cluster, tmp_path
):
    # SIGUSR2 10 s before the limit (SLURM sends it on a 30 s cycle: 20-50 s into the job); the job
    # checkpoints, submitit requeues it, the requeued job resumes from last.ckpt
    args = [
        "-m",
        "arch.num_offsets=9",
        *SLURM,
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=10",
        f"paths.log_dir={tmp_path}",
        "run_name=limit",
        *LONG,
        "logger=default",
    ]
    sweep = tmp_path / "train" / "multiruns" / "limit"
    Launch(args, sweep).wait(timeout=1200)
    job = sweep / "job"  # a multirun of one job (no swept key)
    status = json.loads((job / "status.json").read_text())
    starts = [s["start_step"] for s in status["sessions"]]
    assert status["state"] == "done" and status["preemptions"] >= 2, status
    assert len(starts) == status["preemptions"] + 1 and starts[0] == 0 and starts == sorted(set(starts)), (
        starts
    )
    assert json.loads((job / "metrics.json").read_text())["global_step"] == STEPS
    entry = json.loads((sweep / "sweep.json").read_text())["jobs"][0]
    assert (entry["state"], entry["preemptions"]) == ("done", status["preemptions"])
    runs = sorted((job / "wandb").glob("offline-run-*"))
    assert len(runs) == len(starts) and len(set(offline_run_ids(runs))) == 1  # one W&B run, continued

    local = subprocess.run(
        [
            str(BIN / "vsrlab-train"),
            "arch.num_offsets=9",
            f"paths.log_dir={tmp_path}",
            "run_name=uninterrupted",
            "logger=csv",
            *LONG,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(),
    )
    assert local.returncode == 0, local.stderr[-3000:]
    resumed, uninterrupted = (
        _weights(job / "checkpoints/last.ckpt"),
        _weights(tmp_path / "train/runs/uninterrupted/checkpoints/last.ckpt"),
    )
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), f"{key} differs from the uninterrupted run"


# ------------------------------------------------------------ (c) scontrol requeue, scancel --signal
@pytest.mark.parametrize("how", ["scontrol-requeue", "scancel-usr2"])
def test_a_requeued_or_signalled_job_resumes_and_finishes(slurm_cluster, tmp_path, how):
    steps = 2500
    args = [
        "-m",
        "arch.num_offsets=9",
        *SLURM,
        "hydra.launcher.timeout_min=10",
        f"paths.log_dir={tmp_path}",
        "run_name=requeue",
        "callbacks.status.every_n_steps=10",
        *FAST,
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=1000",
        f"model.scheduler.periods=[{steps}]",
        "test=false",
    ]
    sweep = tmp_path / "train" / "multiruns" / "requeue"
    job = sweep / "job"  # a multirun of one job (no swept key)
    launch = Launch(args, sweep)
    launch.wait_for_step(job / "status.json", 300)
    (job_id,) = _squeue_ids()
    command = (
        ["scontrol", "requeue", job_id] if how == "scontrol-requeue" else ["scancel", "--signal=USR2", job_id]
    )
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    launch.wait(timeout=900)
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "done" and status["preemptions"] == 1, status
    starts = [s["start_step"] for s in status["sessions"]]
    assert len(starts) == 2 and 300 <= starts[1] < steps, starts
    assert json.loads((job / "metrics.json").read_text())["global_step"] == steps
