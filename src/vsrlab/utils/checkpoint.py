"""Reading checkpoints: one function for every reader, whose errors name the file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or is not what the caller needs; names the file."""


def _torch_load(path: Path, weights_only: bool, mmap: bool) -> Any:
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
        except RuntimeError as err:  # files in torch's legacy (non-zip) format cannot be mapped
            if "mmap" not in str(err):
                raise
    return torch.load(path, map_location="cpu", weights_only=weights_only)


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> Any:
    """The object saved in ``path``; ``mmap=True`` maps tensors instead of reading them (a cheap peek).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        CheckpointError: the file cannot be read (truncated, corrupt, not a PyTorch file); the
            message names it and the reader's reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            return _torch_load(path, True, mmap)
        except pickle.UnpicklingError as err:
            if "weights only" not in str(err).lower() and "weights_only" not in str(err).lower():
                raise
            # Lightning's and MMagic's checkpoints hold plain Python objects beyond tensors
            return _torch_load(path, False, mmap)
    except MemoryError:
        raise
    except Exception as err:  # the readers raise RuntimeError, ValueError, EOFError, UnpicklingError, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
