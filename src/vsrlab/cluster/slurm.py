"""SLURM's view of jobs, from its commands: the queue (``squeue``), accounting (``sacct``, where the
cluster keeps it) and a running job's time left. Job ids are as submitit writes them: ``123`` or, for a
task of an array, ``123_4``."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

#: states of a job that may still run (or run again): SLURM keeps it in its queue
ALIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "COMPLETING",
        "CONFIGURING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
        "SPECIAL_EXIT",
    }
)
COMMAND_TIMEOUT_S = 60
#: environment variable of a job's batch script: seconds between SLURM's warning signal and the time limit
SIGNAL_DELAY_ENV = "VSRLAB_SIGNAL_DELAY_S"


class JobLost(RuntimeError):
    """A cluster job that ended without a result (its message names the job, its SLURM state and log)."""


class JobFailed(RuntimeError):
    """A cluster job whose task raised an exception (its message names the job, the exception and log)."""


@dataclass(frozen=True)
class JobState:
    """A job's state (``RUNNING``, ``COMPLETED``, ``TIMEOUT``, ``CANCELLED``, ...), the reason SLURM
    gives for it (squeue) or its exit code (sacct, ``code:signal``), and where it was read."""

    state: str
    detail: str = ""
    source: str = "squeue"

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES


def current_job_id() -> str | None:
    """The id of the job this process runs in, as submitit writes it: ``<array id>_<task>`` for a task
    of an array (whose ``SLURM_JOB_ID`` may be the array's own id, which names every task), else
    ``SLURM_JOB_ID``; None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _run(command: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None


def _main_state(text: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; ``RUNNING`` stays."""
    return text.strip().split(" ")[0].upper()


def queue_states(job_ids: Iterable[str]) -> dict[str, JobState] | None:
    """The states of the listed jobs that slurmctld still knows (``squeue -t all``: finished jobs stay
    ``MinJobAge`` seconds); None when squeue does not answer."""
    wanted = set(job_ids)
    if not wanted:
        return {}
    user = os.environ.get("USER") or str(os.getuid())
    done = _run(["squeue", "-h", "-r", "-t", "all", "-u", user, "-o", "%i|%T|%r"])
    if done is None or done.returncode != 0:
        return None
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if job_id in wanted:
            states[job_id] = JobState(_main_state(state), "" if reason == "None" else reason, "squeue")
    return states


def accounting_states(job_ids: Iterable[str]) -> dict[str, JobState] | None:
    """The states ``sacct`` records for the listed jobs (the newest record of each); None when the
    cluster keeps no accounting (sacct fails) or does not answer."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    done = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(ids)])
    if done is None or done.returncode != 0:
        return None
    states = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0] in ids:
            states[parts[0]] = JobState(_main_state(parts[1]), parts[2], "sacct")
    return states


def job_states(job_ids: Iterable[str]) -> tuple[dict[str, JobState], bool]:
    """``({job id: state}, accounting)``: the queue's view, and accounting's for the jobs that left the
    queue (``accounting`` False when the cluster keeps none: such a job has no state here)."""
    ids = list(job_ids)
    states = queue_states(ids) or {}
    missing = [i for i in ids if i not in states]
    accounted = accounting_states(missing) if missing else {}
    states.update(accounted or {})
    return states, accounted is not None


_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")


def parse_duration(text: str) -> float | None:
    """SLURM's ``[days-][hours:]minutes:seconds`` in seconds; None for ``UNLIMITED``, ``INVALID``, ..."""
    match = _DURATION.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def time_left_s(job_id: str) -> float | None:
    """Seconds until a running job's time limit (``squeue -o %L``); None without a limit or an answer."""
    done = _run(["squeue", "-h", "-j", job_id, "-o", "%L"])
    if done is None or done.returncode != 0 or not done.stdout.strip():
        return None
    return parse_duration(done.stdout.strip().splitlines()[0])


def restart_count(job_id: str) -> int | None:
    """How often SLURM has restarted (requeued) the job (``scontrol show job``'s ``Restarts``); None
    without an answer."""
    done = _run(["scontrol", "show", "job", "-o", job_id])
    match = re.search(r"\bRestarts=(\d+)", done.stdout) if done is not None and done.returncode == 0 else None
    return int(match[1]) if match else None


def was_requeued(job_id: str, wait_s: float = 5.0, poll_s: float = 0.5) -> bool:
    """Whether the running job has been requeued since it started: its restart count is past the one
    SLURM gave this start (``SLURM_RESTART_COUNT``), waiting up to ``wait_s`` for slurmctld to say so."""
    started_as = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    deadline = time.monotonic() + wait_s
    while True:
        count = restart_count(job_id)
        if count is not None and count > started_as:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
