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
