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

What a network exposes for analysis goes through explicit interfaces: the offsets of every
:class:`~vsrlab.ops.DeformableAlignment` through :func:`vsrlab.ops.record_offsets`, and TDAN's
aligned LR frames through ``forward(lq, return_aligned_lr=True)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from torch import Tensor

Temporal = Literal["window", "recurrent"]
TEMPORAL_KINDS: tuple[Temporal, ...] = ("window", "recurrent")


@runtime_checkable
class VSRNetwork(Protocol):
    """A vsrlab architecture (see the module docstring)."""

    temporal: ClassVar[Temporal]
    offset_axes: ClassVar[tuple[str, str] | None]

    def __call__(self, lq: Tensor) -> Tensor: ...


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


def is_recurrent(net: Any) -> bool:
    """Whether the network sees whole clips (``temporal == "recurrent"``)."""
    return temporal_kind(net) == "recurrent"


def offset_axes(net: Any) -> tuple[str, str] | None:
    """The constructor arguments that are G and N of a network instance or class, or None."""
    axes = getattr(net, "offset_axes", None)
    return tuple(axes) if axes else None
