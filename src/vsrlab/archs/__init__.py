"""Architectures as plain ``nn.Module``s, one file each (``<name>_arch.py``), BasicSR argument names.

Sliding-window networks take ``(B, T, C, h, w)`` windows and return ``(B, C, s*h, s*w)`` and
expose ``num_frame`` and ``center_frame_idx``.
"""

from vsrlab.archs.bicubic_arch import Bicubic
from vsrlab.archs.blocks import ResidualBlockNoBN, UpsampleOneStep, make_layer
from vsrlab.archs.sliding_window_arch import SlidingWindowVSR

__all__ = ["Bicubic", "ResidualBlockNoBN", "SlidingWindowVSR", "UpsampleOneStep", "make_layer"]
