"""ONNX export of a network, checked with ONNX Runtime.

:func:`export_onnx` traces a network with ``torch.export`` and converts it (PyTorch's ``dynamo``
exporter, onnxscript); :func:`check_onnx` runs the file with ONNX Runtime on the CPU and returns the
largest difference to PyTorch's output. The deformable alignment of every vsrlab network is warps by
``grid_sample`` and 1x1 convolutions (:mod:`vsrlab.ops`), so it exports as ONNX ``GridSample``
(opset >= 16) without a custom operator.

Shapes are static: the file takes ``lq`` ``(1, frames, 3, height, width)`` exactly (a sliding-window
network: its window; a recurrent one: a clip of ``frames``, whose loop over frames the trace unrolls)
and returns ``sr``: ``(1, 3, s*height, s*width)`` (window) or ``(1, frames, 3, s*height, s*width)``
(recurrent). Export once per deployment size; symbolic sizes are not supported (the exporter
specialises the networks' shape-dependent grids and loops).
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vsrlab.utils.io import atomic_write

#: ONNX opset of exported files (GridSample needs >= 16; 18 is the converter's native opset)
OPSET = 18
INPUT, OUTPUT = "lq", "sr"


def export_onnx(net: nn.Module, path: str | Path, frames: int, height: int, width: int,
                opset: int = OPSET) -> Path:  # fmt: skip
    """Write ``net`` (in eval mode, on the CPU) as an ONNX file with the weights inside it, for input
    ``(1, frames, 3, height, width)``; returns ``path``.

    Raises:
        RuntimeError: the network does not export (the message names the failing step).
    """
    path = Path(path)
    net = copy.deepcopy(net).eval().cpu()  # tracing fills shape caches with fake tensors: not the caller's
    example = torch.rand(1, frames, 3, height, width)
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(net, (example,), dynamo=True, opset_version=opset, input_names=[INPUT],
                                    output_names=[OUTPUT], external_data=False, verbose=False)  # fmt: skip
    with atomic_write(path, "wb") as f:
        f.write(program.model_proto.SerializeToString())
    return path


def run_onnx(path: str | Path, lq: Tensor) -> np.ndarray:
    """The output of the ONNX file ``path`` for ``lq`` ``(1, T, 3, h, w)``, by ONNX Runtime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: lq.detach().cpu().numpy().astype(np.float32)})[0]


def check_onnx(path: str | Path, net: nn.Module, lq: Tensor) -> float:
    """Largest absolute difference between ONNX Runtime's output of ``path`` and ``net(lq)`` (float32,
    CPU) on the clip ``lq`` ``(1, T, 3, h, w)``."""
    with torch.no_grad():
        expected = net.eval().cpu()(lq.cpu()).numpy()
    got = run_onnx(path, lq)
    if got.shape != expected.shape:
        raise RuntimeError(f"{path}: output shape {got.shape}, PyTorch's {expected.shape}")
    return float(np.abs(got - expected).max())
