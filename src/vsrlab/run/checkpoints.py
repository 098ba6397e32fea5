"""The checkpoints of a run directory: written atomically with the previous ``last.ckpt`` kept, and
the choice of the one a run resumes from."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from vsrlab.run.layout import CHECKPOINT_DIR, LAST_CHECKPOINT, METRICS_FILE, read_json_object
from vsrlab.utils.checkpoint import CheckpointError, read_checkpoint
from vsrlab.utils.io import atomic_write

log = logging.getLogger(__name__)


def previous_version(path: str | os.PathLike) -> Path:
    """Where the version of ``path`` replaced by the last write is kept: ``last.ckpt`` ->
    ``last.previous.ckpt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def checkpoint_dir(trainer: Any) -> Path:
    """The run's checkpoint folder: the ModelCheckpoint's ``dirpath``, else ``<root>/checkpoints``."""
    folder = getattr(trainer.checkpoint_callback, "dirpath", None)
    return Path(folder) if folder else Path(trainer.default_root_dir) / CHECKPOINT_DIR


def checkpoint_step(path: str | os.PathLike) -> int:
    """``global_step`` of a Lightning checkpoint (read with mmap); CheckpointError if unreadable."""
    ckpt = read_checkpoint(path, mmap=True)
    if not isinstance(ckpt, dict) or "global_step" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning training checkpoint (no global_step)")
    return int(ckpt["global_step"])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints with :func:`vsrlab.utils.io.atomic_write`: a run killed while saving
    leaves the previous checkpoint intact instead of a truncated file. A checkpoint that replaces
    an existing file (``last.ckpt``) keeps the replaced one as ``last.previous.ckpt``, so that a
    ``last.ckpt`` damaged later (a copy cut short, a full disk) still leaves a state to resume."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        with atomic_write(path, "wb", keep_previous=previous_version(path)) as f:
            torch.save(checkpoint, f)


def _newest_readable(folder: Path) -> tuple[Path | None, dict[Path, str]]:
    """The readable training checkpoint of ``folder`` with the highest step (newest file on ties)
    and the reason of every unreadable one."""
    best: tuple[int, int, Path] | None = None
    unreadable = {}
    for path in sorted(folder.glob("*.ckpt")):
        try:
            key = (checkpoint_step(path), path.stat().st_mtime_ns, path)
        except CheckpointError as err:
            unreadable[path] = str(err)
            continue
        best = key if best is None or key[:2] > best[:2] else best
    return (best[2] if best else None), unreadable


def resolve_ckpt_path(
    ckpt_path: str | None, output_dir: str | os.PathLike, rank_zero: bool = True
) -> str | None:
    """The checkpoint to start training from.

    - ``'auto'``: ``<output_dir>/checkpoints/last.ckpt`` (resume). If it is missing or unreadable
      while other checkpoints of the run exist, the readable one with the highest step, with a
      warning naming each unreadable file, which (on rank 0) is renamed to ``<name>.unreadable``
      so that it is neither resumed nor kept as a previous version. None (a fresh run) when the
      run has no checkpoint; a run whose checkpoints are all unreadable raises: it is never
      silently restarted from step 0.
    - ``None``: a fresh run; refuses to start over a run directory that already holds a
      ``last.ckpt`` (its training state would be overwritten).
    - ``'last'``: as ``'auto'``, but a checkpoint must exist.
    - a path: that file, which must be a readable training checkpoint.

    Raises:
        FileExistsError, FileNotFoundError, CheckpointError: naming the file and what to do.
    """
    folder = Path(output_dir) / CHECKPOINT_DIR
    last = folder / LAST_CHECKPOINT
    if ckpt_path in (None, ""):
        if last.exists():
            raise FileExistsError(
                f"{last} exists: resume this run with ckpt_path=last, or start a new run with "
                "another run_name"
            )
        return None
    if ckpt_path in ("auto", "last"):
        if not folder.is_dir() or not any(folder.glob("*.ckpt")):
            if ckpt_path == "last":
                raise FileNotFoundError(
                    f"ckpt_path=last but there is no checkpoint at {last}; pass the run_name of "
                    "the run to resume"
                )
            return None
        if last.is_file():
            try:
                checkpoint_step(last)
                return str(last)
            except CheckpointError:
                pass
        newest, unreadable = _newest_readable(folder)
        if newest is None:
            raise CheckpointError(
                f"no readable checkpoint in {folder}, not starting {output_dir} over from step 0:\n  "
                + "\n  ".join(unreadable.values())
                + "\nmove the folder away (or pass "
                "ckpt_path=null with another run_name) to start a new run"
            )
        for path, reason in unreadable.items():
            log.warning(
                "%s; resuming from %s (step %d) instead%s",
                reason,
                newest,
                checkpoint_step(newest),
                f", the file is kept as {path.name}.unreadable" if rank_zero else "",
            )
            if rank_zero:
                os.replace(path, path.with_name(path.name + ".unreadable"))
        if not unreadable:
            log.warning("%s is missing: resuming from %s (step %d)", last, newest, checkpoint_step(newest))
        return str(newest)
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint_step(path)
    return str(path)


def run_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint of a run directory: the best one of its ``metrics.json``, else ``last.ckpt``."""
    run_dir = Path(run_dir)
    best = (read_json_object(run_dir / METRICS_FILE) or {}).get("best", {}).get("ckpt_path")
    if best and Path(best).is_file():
        return Path(best)
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not last.is_file():
        raise FileNotFoundError(f"{run_dir} has no best checkpoint in {METRICS_FILE} and no {last}")
    return last
