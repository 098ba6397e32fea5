"""Architectures as plain ``nn.Module``s, one file each (``<name>_arch.py``), BasicSR argument names.

Sliding-window networks take ``(B, T, C, h, w)`` windows and return ``(B, C, s*h, s*w)`` and
expose ``num_frame`` and ``center_frame_idx``; recurrent networks take whole clips
``(B, T, C, h, w)`` and return ``(B, T, C, s*h, s*w)``.
"""

from vsrlab.archs.basicvsr_arch import BasicVSR
from vsrlab.archs.basicvsr_pp_arch import BasicVSRPlusPlus
from vsrlab.archs.bicubic_arch import Bicubic
from vsrlab.archs.blocks import (
    RCAB,
    ChannelAttention,
    ConvResidualBlocks,
    ResidualBlockNoBN,
    ResidualGroup,
    UpsampleOneStep,
    make_layer,
)
from vsrlab.archs.dksan_arch import DKSAN
from vsrlab.archs.edvr_arch import EDVR, PCDAlignment, TSAFusion
from vsrlab.archs.flow_vsr_arch import FlowVSR
from vsrlab.archs.iconvsr_arch import IconVSR
from vsrlab.archs.oracle_arch import Oracle
from vsrlab.archs.pretrained import IncompatibleCheckpointError, build_arch, load_pretrained
from vsrlab.archs.psrt_recurrent_arch import PSRTRecurrent
from vsrlab.archs.sliding_window_arch import SlidingWindowVSR
from vsrlab.archs.spynet_arch import SPyNet
from vsrlab.archs.tdan_arch import TDAN
from vsrlab.archs.vsr_transformer_arch import VSRTransformer

__all__ = [
    "EDVR",
    "TDAN",
    "BasicVSR",
    "BasicVSRPlusPlus",
    "Bicubic",
    "IconVSR",
    "ConvResidualBlocks",
    "FlowVSR",
    "IncompatibleCheckpointError",
    "Oracle",
    "PCDAlignment",
    "PSRTRecurrent",
    "ResidualBlockNoBN",
    "SPyNet",
    "SlidingWindowVSR",
    "TSAFusion",
    "UpsampleOneStep",
    "VSRTransformer",
    "build_arch",
    "load_pretrained",
    "make_layer",
    "DKSAN",
    "RCAB",
    "ChannelAttention",
    "ResidualGroup",
]
