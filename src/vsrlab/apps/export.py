"""``vsrlab-export``'s app: the weights of a vsrlab run in BasicSR's layout, for release or for BasicSR:
``{'params': trained weights, 'params_ema': moving average}`` (``params_ema`` only for runs with
``model.ema``); BasicSR, MMagic's BasicSR loaders and vsrlab (``arch.pretrained=...``, which prefers
``params_ema``; :func:`vsrlab.load` with ``arch=``) read it."""

from __future__ import annotations

from pathlib import Path

import torch

from vsrlab.archs.pretrained import basicsr_weights, is_vsrlab_checkpoint
from vsrlab.run.checkpoints import run_checkpoint
from vsrlab.utils.checkpoint import CheckpointError, read_checkpoint
from vsrlab.utils.io import atomic_write


def export_weights(ckpt_path: str | Path, output: str | Path | None = None) -> Path:
    """Write the weights of the vsrlab checkpoint ``ckpt_path`` in BasicSR's layout
    (:func:`basicsr_weights`) to ``output`` (default: the checkpoint's path with ``.pth``); returns
    the path written."""
    ckpt_path = Path(ckpt_path)
    ckpt = read_checkpoint(ckpt_path)
    if not is_vsrlab_checkpoint(ckpt):
        raise CheckpointError(f"{ckpt_path} is not a vsrlab training checkpoint (no net.* weights)")
    output = Path(output) if output else ckpt_path.with_suffix(".pth")
    with atomic_write(output, "wb") as f:
        torch.save(basicsr_weights(ckpt), f)
    return output


def export(source: str | Path, output: str | Path | None = None) -> Path:
    """:func:`export_weights` of a checkpoint or of a run directory's (its best, else ``last.ckpt``)."""
    source = Path(source)
    return export_weights(run_checkpoint(source) if source.is_dir() else source, output)
