"""vsrlab: video super-resolution experiments on alignment, with Lightning and Hydra.

The Python API (imported on first use, so that ``import vsrlab`` stays cheap)::

    import vsrlab
    net = vsrlab.load("logs/train/runs/my_run")      # or a .ckpt, or weights with arch="edvr"
    sr = net.super_resolve(frames)                   # (T, H, W, 3) uint8 -> (T, 4H, 4W, 3) uint8
    vsrlab.metrics.calculate_psnr(sr[0], gt[0], crop_border=0)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["load", "metrics"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from vsrlab.engine.loading import load

        return load
    if name == "metrics":
        return importlib.import_module("vsrlab.metrics")
    raise AttributeError(f"module 'vsrlab' has no attribute {name!r}")
