"""Bicubic upsampling baseline (MATLAB ``imresize``), the reference row of every VSR table."""

from __future__ import annotations

from typing import ClassVar

import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import Temporal
from vsrlab.ops.resize import matlab_imresize_tensor


class Bicubic(nn.Module):
    """Upsamples the centre frame of a window with MATLAB bicubic; no parameters.

    Args:
        upscale: SR factor.
        num_frame: frames in the input window (the centre one is upsampled).
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    def __init__(self, upscale: int = 4, num_frame: int = 1) -> None:
        super().__init__()
        self.upscale = upscale
        self.num_frame = num_frame
        self.center_frame_idx = num_frame // 2

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C, h, w)`` -> ``(B, C, s*h, s*w)``."""
        return matlab_imresize_tensor(x[:, self.center_frame_idx], self.upscale)
