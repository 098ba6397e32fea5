"""The architecture contract: what vsrlab needs to know about a network besides ``forward``.

Every architecture class declares, as class attributes:

- ``temporal``: ``"window"`` — a sliding-window network: ``forward`` maps ``(B, num_frame, C, h,
  w)`` to the centre frame ``(B, C, s*h, s*w)``, and instances carry ``num_frame`` and
  ``center_frame_idx``; or ``"recurrent"`` — the network sees a whole clip ``(B, T, C, h, w)`` and
  returns every frame ``(B, T, C, s*h, s*w)`` (BasicVSR, IconVSR, BasicVSR++). The bicubic baseline
  is a window of one frame.
- ``offset_axes``: the constructor arguments that are the offset groups G and the offsets per
  group N of its deformable alignment (``("deformable_groups", "num_offsets")`` for EDVR,
  ``("deform_groups", "num_offsets")`` for TDAN), or None. Sweeps over both get G x N heatmaps
  (the sweeper records them in ``sweep.json``).

What else an app may ask of a network is answered here and nowhere else (no probing with
``getattr`` or ``inspect`` outside this module):

- :func:`accepts_flows` / :func:`uses_flows`: ``forward(x, flows=...)`` takes given flows (and the
  instance's flow options use them: ``uses_flows``);
- :func:`returns_levels`: ``forward(x, return_levels=True)`` returns the outputs of a cascade
  (``levels`` of them, when the instance says);
- :func:`returns_aligned_lr`: ``forward(lq, return_aligned_lr=True)`` also returns the aligned LR
  frames (TDAN);
- :func:`centre_frame`: the window frame a sliding-window network super-resolves
  (``center_frame_idx``, else the middle); :func:`window_length`: its ``num_frame`` (1 for networks
  without windows);
- :func:`upscale`: the declared scale (``upscale``), None for networks whose input is already on the
  HR grid (``hr_in``) or that declare none;
- :func:`checkpoint_modules`: the module patterns of activation checkpointing the network proposes.

The offsets of every :class:`~vsrlab.ops.DeformableAlignment` are read through
:func:`vsrlab.ops.record_offsets`.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

Temporal = Literal["window", "recurrent"]
TEMPORAL_KINDS: tuple[Temporal, ...] = ("window", "recurrent")


def temporal_kind(net: Any) -> Temporal:
    """``"window"`` or ``"recurrent"`` of a network instance or class.

    Raises:
        TypeError: the class does not declare ``temporal`` (naming it and the contract).
    """
    kind = getattr(net, "temporal", None)
    if kind not in TEMPORAL_KINDS:
        cls = net if isinstance(net, type) else type(net)
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} does not declare `temporal` ('window' or 'recurrent'): "
            "see vsrlab.archs.contract"
        )
    return kind


def declared_temporal(net: Any) -> Temporal | None:
    """``temporal`` of a network that declares it, None for one that does not (an image network)."""
    kind = getattr(net, "temporal", None)
    return kind if kind in TEMPORAL_KINDS else None


def is_recurrent(net: Any) -> bool:
    """Whether the network sees whole clips (``temporal == "recurrent"``)."""
    return temporal_kind(net) == "recurrent"


def offset_axes(net: Any) -> tuple[str, str] | None:
    """The constructor arguments that are G and N of a network instance or class, or None."""
    axes = getattr(net, "offset_axes", None)
    return tuple(axes) if axes else None


def _forward_takes(net: Any, argument: str) -> bool:
    return argument in inspect.signature(net.forward).parameters


def accepts_flows(net: Any) -> bool:
    """Whether ``forward`` takes ``flows`` (flows given from outside, ``model.flow_source=batch``)."""
    return _forward_takes(net, "flows")


def uses_flows(net: Any) -> bool:
    """Whether the network takes flows and this instance uses them (its flow options are on)."""
    return accepts_flows(net) and bool(getattr(net, "uses_flows", True))


def returns_levels(net: Any) -> bool:
    """Whether ``forward`` takes ``return_levels`` (a cascade's outputs, coarse to fine)."""
    return _forward_takes(net, "return_levels")


def num_levels(net: Any) -> int | None:
    """How many levels a cascaded network returns, None when it does not say."""
    levels = getattr(net, "levels", None)
    return None if levels is None else int(levels)


def returns_aligned_lr(net: Any) -> bool:
    """Whether ``forward`` takes ``return_aligned_lr`` (TDAN: the aligned LR frames as well)."""
    return _forward_takes(net, "return_aligned_lr")


def window_length(net: Any) -> int:
    """Frames per window of a sliding-window network (``num_frame``); 1 for a network without one."""
    return int(getattr(net, "num_frame", 1))


def centre_frame(net: Any, frames: int | None = None) -> int:
    """The window frame a sliding-window network super-resolves: ``center_frame_idx``, else the middle
    of ``frames`` (default: its window)."""
    centre = getattr(net, "center_frame_idx", None)
    return int(centre) if centre is not None else (window_length(net) if frames is None else frames) // 2


def upscale(net: Any) -> int | None:
    """The declared scale factor; None when the input is on the HR grid already (``hr_in``) or none is
    declared."""
    scale = getattr(net, "upscale", None)
    return None if scale is None or getattr(net, "hr_in", False) else int(scale)


def checkpoint_modules(net: Any) -> list[str] | None:
    """The module patterns a network proposes for activation checkpointing, None without any."""
    patterns = getattr(net, "checkpoint_modules", None)
    return list(patterns) if patterns else None
