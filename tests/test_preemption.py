"""Pre-emption: a signal to any rank of a run (one process or two DDP ranks) stops every rank at
the same training step with a checkpoint, the process exits with 128 + signal, and the relaunch
resumes from that step; nothing hangs."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from conftest import FAST, compose_config
from vsrlab.apps.train import train
from vsrlab.callbacks.preemption import Preempted
from vsrlab.cluster.signals import STOP

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent
DDP_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.benchmark=false"]
MAX_STEPS = 200  # two DDP ranks take about 50 ms a step: the signal always arrives long before the end
SINGLE_STEPS = 600  # one process takes about 14 ms a step


def _env() -> dict[str, str]:
    # the tests folder is importable in every rank (signal_moments.SignalAt)
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }


def _args(tmp_path: Path, extra: list[str], steps: int = MAX_STEPS) -> list[str]:
    return [
        f"paths.log_dir={tmp_path}",
        "run_name=preempt",
        "test=false",
        *FAST,
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        f"model.scheduler.periods=[{steps}]",
        "data.train.num_clips=64",
        "callbacks.status.every_n_steps=1",
        *extra,
    ]


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Run:
    """``vsrlab-train`` in its own process group (killed whole if the test fails)."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "vsrlab-train"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            start_new_session=True,
        )

    def rank1(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [p for p in _children(self.proc.pid) if "hydra.job.name=rank1" in _cmdline(p)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError("rank 1 did not start")

    def wait_for_step(self, status: Path, step: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if status.is_file() and json.loads(status.read_text() or "{}").get("step", 0) >= step:
                return
            time.sleep(0.05)
        raise AssertionError(f"step {step} not reached:\n{self.output()[-3000:]}")

    def output(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.communicate()[0]

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as hung:
            out = self.output()
            raise AssertionError(
                f"the run did not exit {timeout} s after the signal (hung):\n{out[-4000:]}"
            ) from hung
        return self.proc.returncode, out


def _assert_stopped_at_one_step(run_dir: Path, signum: int, ddp: bool, steps: int = MAX_STEPS) -> int:
    status = json.loads((run_dir / "status.json").read_text())
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "global_step"
    ]
    assert status["state"] == "preempted" and status["step"] == step and 1 <= step < steps, status
    assert status["signal"] == signal.Signals(signum).name and status["preemptions"] == 1
    assert not (run_dir / "done").exists() and not (run_dir / "metrics.json").exists()
    if ddp:  # both ranks agreed on the step
        for log in ("train.log", "rank1.log"):
            assert f"checkpoint at step {step} written" in (run_dir / log).read_text(), log
    return step


def _assert_relaunch_resumes(args: list[str], run_dir: Path, step: int, steps: int = MAX_STEPS) -> None:
    resumed = subprocess.run(
        [str(BIN / "vsrlab-train"), *args], capture_output=True, text=True, timeout=600, env=_env()
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done" and [s["start_step"] for s in status["sessions"]] == [0, step]
    assert status["preemptions"] == 1
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == steps


# --------------------------------------------------------------------------------- single process
@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR2"])
def test_signal_checkpoints_and_the_relaunch_resumes(tmp_path, signame):
    signum = getattr(signal, signame)
    args = _args(tmp_path, [], SINGLE_STEPS)
    run_dir = tmp_path / "train" / "runs" / "preempt"
    run = Run(args)
    run.wait_for_step(run_dir / "status.json", 3)
    run.proc.send_signal(signum)
    code, out = run.wait()
    assert code == 128 + signum, out[-3000:]
    step = _assert_stopped_at_one_step(run_dir, signum, ddp=False, steps=SINGLE_STEPS)
    _assert_relaunch_resumes(args, run_dir, step, SINGLE_STEPS)


# ------------------------------------------------------------------------------------ two DDP ranks
DEFAULT_DDP_CASES = (("SIGTERM", "all"),)  # the default suite's; the other five are slow


@pytest.mark.parametrize(
    ("signame", "target"),
    [
        pytest.param(*case, marks=[] if case in DEFAULT_DDP_CASES else pytest.mark.slow)
        for case in itertools.product(["SIGTERM", "SIGUSR2"], ["rank0", "all", "rank1"])
    ],
)
def test_ddp_signal_to_any_rank_stops_both_at_one_step(tmp_path, signame, target):
    """Rank 0 only (a local ``kill``), every rank (``srun`` delivers to all tasks) or rank 1 only:
    both ranks checkpoint at the same step and exit; the relaunch resumes (checked for SIGUSR2)."""
    signum = getattr(signal, signame)
    args = _args(tmp_path, DDP_CPU)
    run_dir = tmp_path / "train" / "runs" / "preempt"
    run = Run(args)
    rank1 = run.rank1()
    run.wait_for_step(run_dir / "status.json", 3)
    pids = {"rank0": [run.proc.pid], "all": [run.proc.pid, rank1], "rank1": [rank1]}[target]
    for pid in pids:
        os.kill(pid, signum)
    code, out = run.wait()
    assert code == 128 + signum, out[-3000:]
    deadline = time.monotonic() + 60
    while _alive(rank1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(rank1), "rank 1 is still running after rank 0 exited"
    step = _assert_stopped_at_one_step(run_dir, signum, ddp=True)
    if signame == "SIGUSR2":
        _assert_relaunch_resumes(args, run_dir, step)


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_ddp_signal_during_validation_abandons_it_and_the_resumed_run_validates_that_step(tmp_path):
    """A signal to rank 1 inside the validation after step 4: both ranks abandon it at the same batch
    with step 4's checkpoint; the relaunch validates step 4 again from its first batch and ends with
    the weights and validation history of an uninterrupted two-rank run."""
    steps = ["trainer.max_steps=8", "trainer.val_check_interval=4", "model.scheduler.periods=[8]"]
    signal_at = [
        "+callbacks.signal._target_=signal_moments.SignalAt",
        "+callbacks.signal.moment=validation",
        "+callbacks.signal.ranks=[1]",
    ]
    args = _args(tmp_path, [*DDP_CPU, *steps])
    run_dir = tmp_path / "train" / "runs" / "preempt"
    code, out = Run([*args, *signal_at]).wait(timeout=300)
    assert code == 128 + signal.SIGUSR2, out[-3000:]
    assert _assert_stopped_at_one_step(run_dir, signal.SIGUSR2, ddp=True, steps=8) == 4
    assert _checkpoint(run_dir)["vsrlab_val_history"] == []  # the validation of step 4 was abandoned
    _assert_relaunch_resumes(args, run_dir, 4, steps=8)

    reference = [*(a for a in args if not a.startswith("run_name=")), "run_name=uninterrupted"]
    code, out = Run(reference).wait(timeout=300)
    assert code == 0, out[-3000:]
    _assert_same_training(_checkpoint(run_dir), _checkpoint(tmp_path / "train" / "runs" / "uninterrupted"))


def _checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def _assert_same_training(resumed: dict, uninterrupted: dict) -> None:
    """Equal weights (bitwise), optimizer step count, scheduler state and validation history."""
    assert resumed["global_step"] == uninterrupted["global_step"]
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), f"{key} differs from the uninterrupted run"
    assert resumed["lr_schedulers"] == uninterrupted["lr_schedulers"]
    assert resumed["vsrlab_val_history"] == uninterrupted["vsrlab_val_history"]
    assert resumed["vsrlab_val_history"], "no validation ran"


# ----------------------------------------------------------------- a signal at every moment, in process
MOMENT_RUN = [
    "trainer.max_steps=12",
    "trainer.val_check_interval=4",
    "model.scheduler.periods=[12]",
    "trainer.num_sanity_val_steps=1",
    "test=true",
]
#: where each moment stops: (step recorded in status.json, checkpoint written at that step)
MOMENT_STOPS = {
    "build": (0, False),  # before training: nothing to save, the run starts over
    "sanity": (0, False),
    "step": (4, True),  # at a validation step: the resumed run validates step 4
    "validation": (4, True),
    "save": (5, True),  # received while step 4's checkpoint is written: acted on after step 5
    "test": (12, False),  # fit finished (last.ckpt of step 12 exists): the resumed run tests again
}


@pytest.fixture
def stop_signals():
    """The process records stop signals as the ``vsrlab-train`` entry point does."""
    installed = STOP.install()
    yield STOP
    STOP.uninstall(installed)


@pytest.fixture(scope="module")
def uninterrupted_moment_run(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    results = train(compose_config("train", [*FAST, *MOMENT_RUN], run_dir))
    return {"checkpoint": _checkpoint(run_dir), "test": results["test"]}


@pytest.mark.parametrize("moment", list(MOMENT_STOPS))
def test_a_signal_at_any_moment_stops_at_a_safe_point_and_the_resumed_run_equals_an_uninterrupted_one(
    tmp_path, stop_signals, uninterrupted_moment_run, moment
):
    run_dir = tmp_path / "run"
    signal_at = ["+callbacks.signal._target_=signal_moments.SignalAt", f"+callbacks.signal.moment={moment}"]
    with pytest.raises(SystemExit) as stop:
        train(compose_config("train", [*FAST, *MOMENT_RUN, *signal_at], run_dir))
    assert stop.value.code == 128 + signal.SIGUSR2
    step, saved = MOMENT_STOPS[moment]
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["state"], status["step"], status["preemptions"], status["signal"]) == (
        "preempted", step, 1, "SIGUSR2"
    ), status  # fmt: skip
    assert not (run_dir / "done").exists()
    last = run_dir / "checkpoints" / "last.ckpt"
    if saved:
        assert _checkpoint(run_dir)["global_step"] == step
    elif step == 0:
        assert not last.exists()
    stop_signals.clear()

    results = train(compose_config("train", [*FAST, *MOMENT_RUN], run_dir))
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done" and [s["start_step"] for s in status["sessions"]][-1] == step
    _assert_same_training(_checkpoint(run_dir), uninterrupted_moment_run["checkpoint"])
    assert results["test"] == uninterrupted_moment_run["test"]


# ------------------------------------------------------------------------------- submitit hand-over
class SignalAtStep(pl.Callback):
    """Sends ``signum`` to this process after training step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def test_sigusr2_under_submitit_checkpoints_and_finishes_wandb_before_submitit_requeues(make_cfg, tmp_path):
    """submitit's SIGUSR2 handler (requeue, then exit) runs only after the checkpoint is written,
    the state recorded and the W&B run finished as pre-empted."""
    import wandb

    calls = []

    def submitit_like(signum, frame):
        ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
        status = json.loads((tmp_path / "run" / "status.json").read_text())
        calls.append(
            (
                signum,
                torch.load(ckpt, weights_only=False)["global_step"] if ckpt.exists() else None,
                status["state"],
                wandb.run,
            )
        )
        raise SystemExit(-1)  # submitit requeues the job and exits

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        cfg = make_cfg(
            overrides=[
                "trainer.max_steps=50",
                "trainer.val_check_interval=50",
                "test=false",
                "logger=default",
                "+callbacks.signal._target_=test_preemption.SignalAtStep",
                "+callbacks.signal.step=3",
                f"+callbacks.signal.signum={int(signal.SIGUSR2)}",
            ]
        )
        with pytest.raises(SystemExit) as stop:
            train(cfg)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert stop.value.code == -1  # submitit's exit
    # sent after the ranks agreed at step 3 (the preemption callback runs first): acted on after step 4
    assert calls == [(signal.SIGUSR2, 4, "preempted", None)]  # and the W&B run already finished
    assert not (tmp_path / "run" / "done").exists()
    run_dir = next((tmp_path / "run" / "wandb").glob("offline-run-*"))
    records = _finished_wandb_records(next(run_dir.glob("run-*.wandb")))
    assert "preempting" in records and records.get("exit", {}).get("exit_code") == 128 + signal.SIGUSR2


def _finished_wandb_records(path: Path, timeout: float = 120.0) -> dict:
    """The records of an offline W&B run file once its ``exit`` record is on disk: ``wandb.finish``
    returns before wandb's service process has flushed the file (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = _wandb_records(path)
        except Exception:  # a record still being written
            if time.monotonic() > deadline:
                raise
            records = {}
        if "exit" in records or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _wandb_records(path: Path) -> dict:
    """``{record type: fields}`` of an offline W&B run file (the last record of each type).

    The file is wandb's LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB
    blocks of chunks (CRC 4 bytes, length 2, type 1: full / first / middle / last) holding
    ``wandb_internal_pb2.Record`` messages.
    """
    from google.protobuf.json_format import MessageToDict
    from wandb.proto import wandb_internal_pb2

    data, block, pos = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", path
    records, parts = {}, []
    while pos < len(data):
        left = block - pos % block
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6] if left >= 7 else 0
        if left < 7 or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        parts.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # full or last chunk: a record is complete
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            name = record.WhichOneof("record_type")
            records[name] = MessageToDict(getattr(record, name), preserving_proto_field_name=True)
    return records


def test_preempted_is_a_system_exit_with_128_plus_signal():
    stop = Preempted(signal.SIGUSR2, 7, "last.ckpt")
    assert isinstance(stop, SystemExit) and stop.code == 140 and "SIGUSR2 after step 7" in str(stop)


def test_a_run_whose_requeue_fails_is_marked_failed_not_left_preempted(tmp_path, stop_signals):
    """Under SLURM, a job with no requeues left: submitit's requeue raises; the run is then ``failed``
    with that reason (nothing will resume it), not ``preempted``."""

    def no_requeues_left(signum: int) -> None:
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    stop_signals.requeue = no_requeues_left
    signal_at = ["+callbacks.signal._target_=signal_moments.SignalAt", "+callbacks.signal.moment=step"]
    try:
        with pytest.raises(RuntimeError, match="timed-out too many times"):
            train(compose_config("train", [*FAST, *MOMENT_RUN, *signal_at], tmp_path / "run"))
    finally:
        stop_signals.requeue = None
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 4 and status["preemptions"] == 1, status
    assert status["error"].startswith("pre-empted and not requeued: RuntimeError: Job not requeued")
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)["global_step"] == 4
