"""Hydra launcher ``hydra/launcher=vsrlab_slurm`` (what ``conf/hydra/launcher/slurm.yaml`` selects):
hydra-submitit-launcher's SLURM launcher that never hangs and never submits a job twice.

- Each job runs :mod:`vsrlab.cluster.task` (stop signals kept from the first instant; requeue at a
  safe point) in a batch script that requeues a task killed before it could act
  (:mod:`vsrlab.cluster.launcher`); ``srun --kill-on-bad-exit=1`` ends a multi-node job whose task died,
  instead of leaving the other ranks waiting in a collective.
- :meth:`SlurmLauncher.launch` returns when every job has finished, failed or been lost (ended without a
  result: a signal, ``scancel``, out of memory, a failed node), each reported by name with its SLURM
  state and log; the sweeper then exits non-zero. A requeued job is waited for.
- Submitted job ids are recorded in ``sweep.json``: a relaunch of the same command (after Ctrl-C, or a
  killed launcher) attaches to those still in SLURM's queue instead of submitting them again; the
  sweeper already skips finished ones.

``hydra/launcher=vsrlab_local`` (what ``conf/hydra/launcher/local.yaml`` selects) is submitit's local
launcher with the same two touches as the SLURM one: each job's stdout and stderr are linked from its run
directory (``job.out``, ``job.err``), and no empty ``.submitit/%j`` folder is left behind (submitit creates
its folder template literally).

Lives in ``hydra_plugins`` because Hydra only instantiates launchers found there.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides

from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

log = logging.getLogger(__name__)

SUBDIR_KEY = "hydra.sweep.subdir="


@dataclass
class VsrlabSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.vsrlab_launcher.vsrlab_launcher.SlurmLauncher"
    # arguments of srun: a task that dies ends the whole step (the other ranks would wait in a collective)
    srun_args: list[str] = field(default_factory=lambda: ["--kill-on-bad-exit=1"])
    # shell lines run after the job's srun (vsrlab's requeue of a task killed too early comes last)
    teardown: list[str] = field(default_factory=list)
    # command that starts Python in the job (null: this interpreter), e.g. "singularity exec img.sif python"
    python: str | None = None
    # seconds between two looks at the jobs' results and states
    poll_s: float = 5.0
    # a job neither in SLURM's queue nor with a result for this long is lost (file systems may lag)
    lost_after_s: float = 60.0


ConfigStore.instance().store(
    group="hydra/launcher", name="vsrlab_slurm", node=VsrlabSlurmQueueConf(), provider="vsrlab"
)


@dataclass
class VsrlabLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.vsrlab_launcher.vsrlab_launcher.LocalLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="vsrlab_local", node=VsrlabLocalQueueConf(), provider="vsrlab"
)


def link_job_logs(run_dir: Path) -> None:
    """``run_dir/job.out`` and ``job.err``: links to the submitit logs of the job this process runs."""
    import submitit

    try:
        paths = submitit.JobEnvironment().paths
    except RuntimeError:  # not inside a submitit job
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (("job.out", paths.stdout), ("job.err", paths.stderr)):
        link = run_dir / name
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(Path(target).resolve())


def remove_template_folder(folder: str) -> None:
    """Remove the empty folder submitit made from its ``%j`` template (the jobs' folders are beside it)."""
    template = Path(folder)
    if "%j" in template.name and template.is_dir() and not any(template.iterdir()):
        template.rmdir()


class SubmititJobMixin:
    """The touches of both launchers: job logs linked from the run directory, no template folder left."""

    config: Any
    params: dict[str, Any]

    def __call__(self, sweep_overrides: list[str], *args: Any) -> JobReturn:
        subdir = job_name(sweep_overrides)
        first_task = int(os.environ.get("SLURM_PROCID", "0") or 0) == 0
        if first_task and any(o.startswith(SUBDIR_KEY) for o in sweep_overrides):
            from vsrlab.engine.resolvers import register_resolvers

            register_resolvers()  # the sweep directory's name resolves through them
            link_job_logs(Path(str(self.config.hydra.sweep.dir)) / subdir)
        return super().__call__(sweep_overrides, *args)  # type: ignore[misc]

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            return super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]
        finally:
            remove_template_folder(str(self.params["submitit_folder"]))


class LocalLauncher(SubmititJobMixin, BaseSubmititLauncher):
    _EXECUTOR = "local"


def job_name(overrides: Sequence[str]) -> str:
    """The job's directory in the sweep (the vsrlab sweeper's ``hydra.sweep.subdir``), else its overrides."""
    for override in overrides:
        if override.startswith(SUBDIR_KEY):
            return override[len(SUBDIR_KEY) :].strip("'\"")
    return " ".join(filter_overrides(list(overrides))) or "job"


class SlurmLauncher(SubmititJobMixin, BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    def __call__(self, sweep_overrides: list[str], *args: Any) -> JobReturn:
        rank = int(os.environ.get("SLURM_PROCID", "0") or 0)
        if rank > 0:  # every task runs the job; the other ranks log beside rank 0, as Lightning's local DDP
            sweep_overrides = [
                *sweep_overrides,
                f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/rank{rank}.log",
            ]
        return super().__call__(sweep_overrides, *args)

    #: parameters of this launcher that are not submitit's
    WATCH_KEYS = ("poll_s", "lost_after_s")

    def make_executor(self) -> Any:
        """The :class:`vsrlab.cluster.launcher.SlurmExecutor` of this launcher's parameters."""
        from vsrlab.cluster.launcher import make_executor

        params: dict[str, Any] = {k: v for k, v in self.params.items() if k not in self.WATCH_KEYS}
        folder = str(params.pop("submitit_folder"))
        max_num_timeout = int(params.pop("max_num_timeout"))
        return make_executor(folder, params, max_num_timeout, params.pop("python", None))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from vsrlab.cluster.launcher import Tracked, watch
        from vsrlab.cluster.slurm import JobFailed, JobLost, queue_states
        from vsrlab.run import read_submissions, record_submissions

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        folder = str(self.params["submitit_folder"])
        poll_s, lost_after_s = (float(self.params[k]) for k in self.WATCH_KEYS)

        names = [job_name(o) for o in job_overrides]
        earlier = read_submissions(sweep_dir)
        queued = queue_states([earlier[n]["job_id"] for n in names if n in earlier]) or {}
        tracked: dict[str, Tracked] = {}
        for name in names:
            record = earlier.get(name)
            state = queued.get(record["job_id"]) if record else None
            if state is not None and state.alive:
                tracked[name] = Tracked(name, record["job_id"], record["folder"], int(record.get("tasks", 1)))
                log.info(
                    f"\t{name}: attached to SLURM job {record['job_id']} ({state.state}) of an earlier launch"
                )
        todo = [(i, o) for i, o in enumerate(job_overrides) if names[i] not in tracked]
        if todo:
            executor = self.make_executor()
            job_params = []
            for i, overrides in todo:
                log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(list(overrides)))}")
                job_params.append(
                    (
                        list(overrides),
                        "hydra.sweep.dir",
                        initial_job_idx + i,
                        f"job_id_for_{i}",
                        Singleton.get_state(),
                    )
                )
            jobs = executor.map_array(self, *zip(*job_params, strict=True))
            new = {
                names[i]: Tracked(names[i], job.job_id, folder, int(getattr(job, "num_tasks", 1)))
                for (i, _), job in zip(todo, jobs, strict=True)
            }
            record_submissions(sweep_dir, {name: t.record() for name, t in new.items()})
            remove_template_folder(folder)
            tracked.update(new)
            log.info(f"submitted {len(new)} jobs to SLURM: {', '.join(t.job_id for t in new.values())}")
        try:
            outcomes = watch(
                [tracked[n] for n in names],
                poll_s=poll_s,
                lost_after_s=lost_after_s,
                echo=log.info,
                judge=lambda r: r._return_value if r.status == JobStatus.FAILED else None,
            )
        except KeyboardInterrupt:
            ids = ", ".join(t.job_id for t in tracked.values())
            log.warning(
                f"interrupted: the jobs keep running on SLURM ({ids}); run the same command again to "
                "wait for them (it attaches instead of submitting them again), or scancel them"
            )
            raise SystemExit(130) from None
        returns = []
        for name, overrides in zip(names, job_overrides, strict=True):
            outcome = outcomes[name]
            if outcome.kind == "success":
                returns.append(outcome.value)
                continue
            error = (JobLost if outcome.kind == "lost" else JobFailed)(
                f"{name}: {outcome.describe(tracked[name])}"
            )
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error))
        return returns
