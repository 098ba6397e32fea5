"""Optical flow files in the Middlebury ``.flo`` format (precomputed flow for the offset-fidelity loss)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vsrlab.data.errors import DataError
from vsrlab.utils.io import atomic_write

FLO_MAGIC = 202021.25


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Middlebury ``.flo`` flow ``(2, h, w)`` float32, ``(x, y)`` order (errors name the file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read flow file {path}: {err}") from None
    if len(data) < 12 or np.frombuffer(data[:4], np.float32)[0] != FLO_MAGIC:
        raise DataError(f"not a .flo file (bad magic number): {path}")
    w, h = (int(v) for v in np.frombuffer(data[4:12], np.int32))
    if len(data) != 12 + 8 * w * h:
        raise DataError(f"truncated .flo file {path}: {len(data)} bytes for {w}x{h}")
    return np.ascontiguousarray(np.frombuffer(data[12:], np.float32).reshape(h, w, 2).transpose(2, 0, 1))


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> Path:
    """Write ``(2, h, w)`` flow as Middlebury ``.flo``."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must be (2, h, w), got {flow.shape}")
    with atomic_write(path) as f:
        f.write(np.float32(FLO_MAGIC).tobytes())
        f.write(np.array([flow.shape[2], flow.shape[1]], np.int32).tobytes())
        f.write(np.ascontiguousarray(flow.transpose(1, 2, 0)).tobytes())
    return Path(path)
