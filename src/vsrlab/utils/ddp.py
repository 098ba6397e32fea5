"""The rank of this process in a distributed run, known before any Trainer exists."""

from __future__ import annotations

import os


def process_rank() -> int:
    """Global rank of this process from the launcher's environment (0 outside distributed runs).

    Valid before a Trainer exists: Lightning's DDP children get ``LOCAL_RANK``/``RANK``, SLURM tasks
    ``SLURM_PROCID``.
    """
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0
