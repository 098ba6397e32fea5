"""``vsrlab-export``'s app, two formats:

- ``pth``: the weights of a vsrlab run in BasicSR's layout, for release or for BasicSR:
  ``{'params': trained weights, 'params_ema': moving average}`` (``params_ema`` only for runs with
  ``model.ema``); BasicSR, MMagic's BasicSR loaders and vsrlab (``arch.pretrained=...``, which prefers
  ``params_ema``; :func:`vsrlab.load` with ``arch=``) read it;
- ``onnx``: the network that evaluates (the moving average when the run kept one) as an ONNX file for
  one input size (:mod:`vsrlab.inference.onnx_export`), checked with ONNX Runtime against PyTorch on a
  synthetic clip of that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vsrlab.archs.contract import temporal_kind, upscale, uses_flows, window_length
from vsrlab.archs.pretrained import basicsr_weights, is_vsrlab_checkpoint
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.engine import load
from vsrlab.inference.onnx_export import OPSET, check_onnx, export_onnx
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


#: frames of a recurrent network's exported clip when none are given
RECURRENT_FRAMES = 7


class ExportCheckError(RuntimeError):
    """The exported file's output differs from PyTorch's by more than the tolerance."""


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx_model` wrote: the file, its input shape, and ONNX Runtime's largest
    difference to PyTorch on a synthetic clip (None: not checked)."""

    path: Path
    input_shape: tuple[int, ...]
    max_diff: float | None


def export_onnx_model(source: str | Path, output: str | Path | None = None, arch: str | None = None,
                      frames: int | None = None, height: int = 64, width: int = 64, opset: int = OPSET,
                      atol: float | None = 1e-4) -> OnnxExport:  # fmt: skip
    """Write the network of ``source`` (a run directory, a vsrlab ``.ckpt``, or weights with ``arch``) as
    ONNX for ``lq`` ``(1, frames, 3, height, width)`` (``frames``: a sliding-window network's window, a
    recurrent one's clip, default :data:`RECURRENT_FRAMES`) to ``output`` (default: beside the
    checkpoint, ``<name>_<frames>x<height>x<width>.onnx``). With ``atol``, ONNX Runtime's output on a
    synthetic clip must equal PyTorch's within it.

    Raises:
        ValueError: a size the network cannot take, or a network that needs given flows.
        ExportCheckError: the difference exceeds ``atol`` (the file is kept, for inspection).
    """
    source = Path(source)
    net = load(source, arch=arch).evaluation_net().float()
    if uses_flows(net):
        raise ValueError(f"{source}: the network takes its flows from the data (flow_source=batch); "
                         "only networks that align by themselves export")  # fmt: skip
    window = temporal_kind(net) == "window"
    frames = int(frames or (window_length(net) if window else RECURRENT_FRAMES))
    if window and frames != window_length(net):
        raise ValueError(f"onnx.frames={frames}: the network's window has {window_length(net)} frames")
    if output is None:
        ckpt = run_checkpoint(source) if source.is_dir() else source
        output = ckpt.with_name(f"{ckpt.stem}_{frames}x{height}x{width}.onnx")
    path = export_onnx(net, output, frames, height, width, opset)
    shape = (1, frames, 3, height, width)
    if atol is None:
        return OnnxExport(path, shape, None)
    scale = upscale(net) or 4
    clip = SyntheticVideoDataset("test", num_clips=1, num_frames=frames, lq_size=(height, width), scale=scale,
                                 flow_pairs=False)[0]["lq"][None]  # fmt: skip
    diff = check_onnx(path, net, clip)
    if diff > atol:
        raise ExportCheckError(f"{path}: ONNX Runtime's output differs from PyTorch's by {diff:.3g} > "
                               f"onnx.atol={atol:g} on a synthetic clip")  # fmt: skip
    return OnnxExport(path, shape, diff)
