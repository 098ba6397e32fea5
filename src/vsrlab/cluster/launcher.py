"""Submitting a sweep's jobs to SLURM and watching them until every one has finished, failed or been
lost (``hydra/launcher=slurm``; the Hydra plugin is ``hydra_plugins.vsrlab_launcher``).

- :class:`SlurmExecutor`: submitit's, with :mod:`vsrlab.cluster.task` as the job process and a batch
  script that requeues a task killed by the warning signal before it could act on it
  (:func:`requeue_lines`).
- :func:`watch`: polls the jobs' result files and SLURM's states (the queue, then accounting where the
  cluster keeps it) and returns each job's outcome; a job that left the queue without a result for
  ``lost_after_s`` is *lost* (killed by a signal, cancelled, out of memory, a failed node), named with
  its SLURM state and log. A requeued job is waited for. It never depends on accounting alone (without
  it, submitit's own wait polls for ever).
"""

from __future__ import annotations

import logging
import shlex
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import JobPaths

from vsrlab.cluster.slurm import SIGNAL_DELAY_ENV, JobState, job_states
from vsrlab.utils.text import describe_error

log = logging.getLogger(__name__)

#: exit statuses of ``srun`` whose task a warning signal (SIGUSR2) killed: the signal itself or 128 + it
KILLED_BY_WARNING = (12, 140)


def requeue_lines(folder: str, max_requeues: int) -> list[str]:
    """Lines of the batch script after ``srun``: a task that the warning signal killed (exit status
    of :data:`KILLED_BY_WARNING`) without writing a result - the signal came before its first statement -
    is requeued, ``max_requeues`` times at most (``SLURM_RESTART_COUNT``)."""
    codes = " ".join(str(c) for c in KILLED_BY_WARNING)
    script = f"""
        vsrlab_rc=$?
        vsrlab_id=${{SLURM_ARRAY_JOB_ID:+${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}}}
        vsrlab_id=${{vsrlab_id:-$SLURM_JOB_ID}}
        vsrlab_folder={shlex.quote(folder)}
        vsrlab_result="${{vsrlab_folder//%j/$vsrlab_id}}/${{vsrlab_id}}_0_result.pkl"
        case " {codes} " in *" $vsrlab_rc "*)
            if [ ! -e "$vsrlab_result" ] && [ "${{SLURM_RESTART_COUNT:-0}}" -lt {int(max_requeues)} ]; then
                echo "vsrlab: the task was killed by SIGUSR2 before it could act on it: requeueing" >&2
                scontrol requeue "$vsrlab_id"
            fi ;;
        esac
        exit "$vsrlab_rc"
    """
    return textwrap.dedent(script).strip().splitlines()


class SlurmExecutor(submitit.SlurmExecutor):
    """submitit's SLURM executor whose tasks run :mod:`vsrlab.cluster.task`."""

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m vsrlab.cluster.task", shlex.quote(str(self.folder))])


def make_executor(
    folder: str,
    params: dict[str, Any],
    max_num_timeout: int,
    python: str | None = None,
) -> SlurmExecutor:
    """A :class:`SlurmExecutor` with ``params`` (submitit's generic names such as ``timeout_min`` or
    sbatch's); its batch script exports the warning delay for :mod:`vsrlab.cluster.task` and ends with
    :func:`requeue_lines`."""
    executor = SlurmExecutor(folder, max_num_timeout=max_num_timeout, python=python)
    params = dict(params)
    delay = int(params.get("signal_delay_s", 90))
    params["setup"] = [f"export {SIGNAL_DELAY_ENV}={delay}", *(params.get("setup") or [])]
    params["teardown"] = [*(params.get("teardown") or []), *requeue_lines(folder, max_num_timeout)]
    executor.update_parameters(**executor._convert_parameters(params))
    return executor


@dataclass
class Tracked:
    """A submitted job: its sweep job ``name`` (subdirectory), SLURM ``job_id``, submitit ``folder``
    (with ``%j``) and number of tasks."""

    name: str
    job_id: str
    folder: str
    tasks: int = 1

    def paths(self, task: int = 0) -> JobPaths:
        return JobPaths(self.folder, job_id=self.job_id, task_id=task)

    @property
    def log(self) -> Path:
        return self.paths().stderr

    def record(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "folder": self.folder, "tasks": self.tasks, "log": str(self.log)}


@dataclass
class Outcome:
    """How a job ended: ``success`` (``value`` is what its task 0 returned), ``error`` (``value`` is
    the exception its task raised, as submitit reports it) or ``lost`` (no result; ``state`` is SLURM's
    last word on it, None without one)."""

    kind: str
    value: Any = None
    state: JobState | None = None
    log: Path | None = None

    def describe(self, tracked: Tracked) -> str:
        where = f"SLURM job {tracked.job_id}, log {self.log}"
        if self.kind == "error":
            return f"failed: {describe_error(self.value)} ({where})"
        if self.kind == "lost":
            if self.state is None:
                said = "left the queue, and SLURM keeps no record of how it ended (no accounting or answer)"
            else:
                detail = f", exit code {self.state.detail}" if self.state.source == "sacct" else ""
                said = f"ended {self.state.state}{detail}"
            return f"lost: {said} without a result ({where})"
        return f"finished ({where})"


def _read_result(tracked: Tracked, judge: Callable[[Any], BaseException | None]) -> Outcome | None:
    """The outcome written by task 0, None while it has none; ``judge`` turns a returned value that
    reports a failure (Hydra's failed ``JobReturn``) into that failure."""
    paths = tracked.paths()
    if not paths.result_pickle.exists():
        return None
    job: submitit.SlurmJob = submitit.SlurmJob(folder=tracked.folder, job_id=tracked.job_id, tasks=(0,))
    try:
        value = job.result()
    except Exception as error:  # the job's own exception, as submitit re-raises it
        return Outcome("error", error, log=paths.stderr)
    failure = judge(value)
    if failure is not None:
        return Outcome("error", failure, log=paths.stderr)
    return Outcome("success", value, log=paths.stderr)


def watch(
    jobs: Sequence[Tracked],
    poll_s: float = 5.0,
    lost_after_s: float = 60.0,
    echo: Callable[[str], None] = log.info,
    states: Callable[[list[str]], tuple[dict[str, JobState], bool]] = job_states,
    judge: Callable[[Any], BaseException | None] = lambda value: None,
) -> dict[str, Outcome]:
    """Wait until every job has an outcome; returns ``{name: Outcome}``. Each change of a job's state
    is reported through ``echo``. A job is lost once SLURM no longer lists it as alive (queue, then
    accounting) and no result appeared for ``lost_after_s`` seconds. ``judge`` tells a returned value
    that reports a failure (see :func:`_read_result`)."""
    outcomes: dict[str, Outcome] = {}
    waiting = {job.name: job for job in jobs}
    seen: dict[str, str] = {}
    gone_since: dict[str, float] = {}
    while waiting:
        for name, job in list(waiting.items()):
            outcome = _read_result(job, judge)
            if outcome is not None:
                outcomes[name] = outcome
                del waiting[name]
                echo(f"{name} ({job.job_id}): {outcome.describe(job).split(' (')[0]}")
        if not waiting:
            break
        current, _ = states([job.job_id for job in waiting.values()])
        now = time.monotonic()
        for name, job in list(waiting.items()):
            state = current.get(job.job_id)
            said = state.state if state is not None else "not listed"
            if seen.get(name) != said:
                seen[name] = said
                reason = f" ({state.detail})" if state is not None and state.detail else ""
                echo(f"{name} ({job.job_id}): {said}{reason}")
            if state is not None and state.alive:
                gone_since.pop(name, None)
                continue
            since = gone_since.setdefault(name, now)
            if now - since >= lost_after_s and _read_result(job, judge) is None:
                outcomes[name] = Outcome("lost", state=state, log=job.log)
                del waiting[name]
                echo(f"{name} ({job.job_id}): {outcomes[name].describe(job)}")
        if waiting:
            time.sleep(poll_s)
    return outcomes
