"""Mixed precision: what stays in float32 whatever the autocast dtype.

Under ``trainer.precision=bf16-mixed`` or ``16-mixed`` convolutions and matrix products run in the
lower precision; vsrlab keeps in float32 what that precision cannot resolve: sampling positions
(:mod:`vsrlab.ops.warp`), the MATLAB-bicubic skip (:func:`vsrlab.ops.matlab_imresize_tensor`), the
losses' reductions and the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOW_PRECISION = (torch.float16, torch.bfloat16)


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` as float32 if it is float16 or bfloat16, else unchanged (float64 stays float64)."""
    return x.float() if x.dtype in LOW_PRECISION else x


#: what a bf16 autocast convolution costs on a CPU without native bf16 (measured, issue 25): an EDVR-M
#: forward on 1 x 5 x 64 x 64 on an AMD EPYC (Zen 3, AVX2, no AVX-512 BF16) took 104 s against 3.1 s in
#: float32, 94% of it in PyTorch's reference kernel ``aten::_slow_conv2d_forward``
SLOW_BF16_NOTE = "bf16 convolutions run PyTorch's slow reference kernel (measured 33x slower than float32)"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX-512 BF16 / AMX): bf16 autocast convolutions are
    fast here; without them they fall back to a reference kernel."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(
    requested: str | int, on_cuda: bool, native_bf16: bool | None = None
) -> tuple[str, str | None]:
    """``(precision for the Trainer, warning or None)``. ``auto``: ``bf16-mixed`` on CUDA with bf16,
    ``16-mixed`` on other CUDA devices, ``bf16-mixed`` on a CPU with native bf16, else ``32-true``.
    A requested bf16 precision on a CPU without native bf16 is kept and warned about."""
    requested = str(requested)
    if on_cuda:
        if requested == "auto":
            return ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"), None
        return requested, None
    native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
    if requested == "auto":
        return ("bf16-mixed" if native else "32-true"), None
    if requested.startswith("bf16") and not native:
        return requested, (
            f"trainer.precision={requested} on a CPU without native bf16 (no AVX-512 BF16 / AMX): "
            f"{SLOW_BF16_NOTE}; use trainer.precision=32-true, or auto (float32 here, bf16 on CPUs with it)"
        )
    return requested, None
