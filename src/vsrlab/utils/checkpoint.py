"""Checkpoints that are never half-written, and resolution of ``ckpt_path``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from vsrlab.utils.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints with :func:`vsrlab.utils.io.atomic_write`: a run killed while saving
    leaves the previous checkpoint intact instead of a truncated file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | os.PathLike) -> str | None:
    """The checkpoint to start training from.

    - ``'auto'``: ``<output_dir>/checkpoints/last.ckpt`` if it exists (resume), else a fresh run.
    - ``None``: a fresh run; refuses to start over a run directory that already holds a
      ``last.ckpt`` (its training state would be overwritten).
    - ``'last'``: ``<output_dir>/checkpoints/last.ckpt``, which must exist.
    - a path: that file, which must exist.
    """
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if ckpt_path == "auto":
        return str(last) if last.exists() else None
    if ckpt_path in (None, ""):
        if last.exists():
            raise FileExistsError(f"{last} exists: resume this run with ckpt_path=last, or start a new run with "
                                  "another run_name")
        return None
    if ckpt_path == "last":
        if not last.exists():
            raise FileNotFoundError(f"ckpt_path=last but there is no checkpoint at {last}; pass the run_name of "
                                    "the run to resume")
        return str(last)
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return str(path)
