"""Training augmentation of frame stacks and their flows (flips and transposition, as BasicSR's
``augment``), applied alike so that the flows stay true."""

from __future__ import annotations

import numpy as np


def augment_arrays(
    arrays: list[np.ndarray], flows: np.ndarray | None, hflip: bool, vflip: bool, transpose: bool
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Flip/transpose ``(T, H, W, C)`` frame stacks and ``(T, 2, h, w)`` ``(x, y)`` flows alike."""
    out = []
    for a in arrays:
        if hflip:
            a = a[:, :, ::-1]
        if vflip:
            a = a[:, ::-1]
        if transpose:
            a = a.transpose(0, 2, 1, 3)
        out.append(np.ascontiguousarray(a))
    if flows is not None:
        if hflip:
            flows = flows[..., ::-1] * np.array([-1, 1], np.float32)[None, :, None, None]
        if vflip:
            flows = flows[..., ::-1, :] * np.array([1, -1], np.float32)[None, :, None, None]
        if transpose:
            flows = flows.transpose(0, 1, 3, 2)[:, ::-1]
        flows = np.ascontiguousarray(flows)
    return out, flows
