"""Architectures as plain ``nn.Module``s, one file each (``<name>_arch.py``), BasicSR argument names.

Sliding-window networks take ``(B, T, C, h, w)`` windows and return ``(B, C, s*h, s*w)`` and
expose ``num_frame`` and ``center_frame_idx``; recurrent networks take whole clips
``(B, T, C, h, w)`` and return ``(B, T, C, s*h, s*w)``.
"""

from vsrlab.archs.bicubic_arch import Bicubic
from vsrlab.archs.blocks import ConvResidualBlocks, ResidualBlockNoBN, UpsampleOneStep, make_layer
from vsrlab.archs.pretrained import IncompatibleCheckpointError, load_pretrained
from vsrlab.archs.sliding_window_arch import SlidingWindowVSR
from vsrlab.archs.spynet_arch import SPyNet

__all__ = ["Bicubic", "ConvResidualBlocks", "IncompatibleCheckpointError", "ResidualBlockNoBN", "SPyNet",
           "SlidingWindowVSR", "UpsampleOneStep", "load_pretrained", "make_layer"]
