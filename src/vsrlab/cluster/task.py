"""``python -m vsrlab.cluster.task <submitit folder>``: the process of one task of a SLURM job that
``hydra/launcher=slurm`` submitted (srun starts one per task), in place of submitit's
``submitit.core._submit``. It differs in three ways, each closing a way a job was lost:

1. its first statement installs :data:`vsrlab.cluster.signals.STOP`, so a stop signal during the
   imports, while the job is unpickled or while the run is built is recorded instead of killing the
   process (what the default action of ``SIGUSR2`` does);
2. submitit's signal handlers are not installed: submitit's checkpoint-and-requeue becomes the requeue
   action of ``STOP``, which the run calls once it has recorded its state at a safe point;
3. a timer records ``SIGUSR2`` itself at the job's time limit minus the warning delay
   (``VSRLAB_SIGNAL_DELAY_S``, set by the batch script): SLURM's warning may come up to a minute early,
   before this process exists, and is then lost.

It also sizes the task's CPU threads to the CPUs SLURM gave it (``OMP_NUM_THREADS`` =
``SLURM_CPUS_PER_TASK`` unless set): PyTorch would otherwise start a thread per core of the node for
every task, and tasks sharing a node without CPU binding slow each other down several times.

A task killed by a signal before its first statement ran is requeued by the batch script
(:func:`vsrlab.cluster.launcher.requeue_lines`).
"""

from vsrlab.cluster.signals import REQUEUE_SIGNAL, STOP

STOP.install()

import os  # noqa: E402  (after the handlers: a signal during these imports is kept)
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402


def _requeue_through_stop(env: Any, paths: Any, delayed: Any) -> None:
    """Stands in for ``JobEnvironment._handle_signals``: no handler, submitit's checkpoint-and-requeue
    (``scontrol requeue`` on rank 0, then ``sys.exit(-1)``; an error result once the job's requeues are
    used up) as the requeue action of ``STOP``.

    SLURM terminates the job it requeues, and ``scontrol requeue`` runs inside that job: it can be ended
    by that SIGTERM before it returns (seen on a loaded machine). That is a requeue that happened, not a
    failure: when SLURM's restart count says so, the task exits as after a requeue (no error result)."""
    import signal
    import subprocess

    from submitit.core.job_environment import SignalHandler

    from vsrlab.cluster.slurm import was_requeued

    handler = SignalHandler(env, paths, delayed)

    def requeue(signum: int) -> None:
        try:
            handler.checkpoint_and_try_requeue(signum)
        except subprocess.CalledProcessError as error:
            if error.returncode != -signal.SIGTERM or not was_requeued(str(env.job_id)):
                raise
            sys.stderr.write(
                f"[vsrlab] scontrol requeue ended by the requeue's SIGTERM: {env.job_id} is requeued\n"
            )
            raise SystemExit(-1) from None

    STOP.requeue = requeue


def arm_time_limit(job_id: str, delay_s: float) -> threading.Timer | None:
    """Record ``SIGUSR2`` ``delay_s`` before the job's time limit (at once if that moment has passed);
    None for a job without a limit."""
    from vsrlab.cluster.slurm import time_left_s

    left = time_left_s(job_id)
    if left is None:
        return None
    timer = threading.Timer(max(0.0, left - delay_s), STOP.record, (REQUEUE_SIGNAL, "time limit near:"))
    timer.daemon = True
    timer.start()
    return timer


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m vsrlab.cluster.task <submitit folder>")
    from submitit.core import job_environment, submission

    from vsrlab.cluster.slurm import SIGNAL_DELAY_ENV, current_job_id

    job_environment.JobEnvironment._handle_signals = _requeue_through_stop
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():  # before torch is imported
        os.environ.setdefault("OMP_NUM_THREADS", os.environ["SLURM_CPUS_PER_TASK"])
    delay = os.environ.get(SIGNAL_DELAY_ENV)
    job_id = current_job_id()
    if delay and job_id:
        arm_time_limit(job_id, float(delay))
    submission.process_job(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
