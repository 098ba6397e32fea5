"""Lightning DDP inside Hydra jobs: the processes of ranks > 0 run the job, never the sweep.

Lightning starts ranks 1..N-1 of single-node DDP by re-running the command line. In a Hydra
multirun that command holds ``-m`` and the whole grid, so every extra rank would relaunch the
sweep (and, as Lightning's fallback points them at ``hydra.run.dir``, write elsewhere). vsrlab
replaces that command: the extra ranks run ``python -m <the training entry point>`` on the job's
``resolved_config.yaml`` inside the job directory, so all ranks share one directory and config.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from vsrlab.run.layout import RESOLVED_CONFIG
from vsrlab.utils.ddp import process_rank


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def job_rank_command(module: str, local_rank: int) -> tuple[Sequence[str], str]:
    """Command (``python -m module``) and working directory of DDP rank ``local_rank`` of the current
    Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    if not (job_dir / RESOLVED_CONFIG).is_file():
        raise FileNotFoundError(f"{job_dir / RESOLVED_CONFIG} is missing: rank 0 writes it before DDP starts")
    command = [
        sys.executable,
        "-m",
        module,
        "-cp",
        str(job_dir),
        "-cn",
        Path(RESOLVED_CONFIG).stem,
        f"hydra.run.dir={_quote(str(job_dir))}",
        "hydra.output_subdir=null",
        f"hydra.job.name=rank{local_rank}",
    ]
    return command, hydra_cfg.runtime.cwd


def install_rank_command(module: str) -> None:
    """Make Lightning's subprocess launcher start extra DDP ranks with :func:`job_rank_command` running
    ``python -m module`` (the training app's entry point)."""
    from pytorch_lightning.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = partial(job_rank_command, module)


def refuse_sweep_on_secondary_rank(argv: Sequence[str] | None = None) -> None:
    """Raise if a process of rank > 0 is about to launch a Hydra multirun (``-m``): a distributed
    launcher ran the sweep command once per rank."""
    argv = sys.argv if argv is None else argv
    if process_rank() > 0 and ("-m" in argv or "--multirun" in argv):
        raise RuntimeError(
            f"rank {process_rank()} was started with a multirun command ({' '.join(argv)}); only "
            "one process may launch a sweep: run the sweep from a single process, its jobs start "
            "their DDP ranks themselves (srun/torchrun must not wrap `vsrlab-train -m`)"
        )
