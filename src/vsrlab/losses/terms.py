"""The loss of a training step as named terms behind one interface.

A term reads what the step produced (:class:`StepOutputs`) and returns its loss and the scores to log
beside it; it declares which extra outputs of the network it needs (``needs``), so the training step
asks the network for exactly those. The terms of ``model.*`` (:func:`vsrlab.losses.build.build_loss_terms`):

============================  ==============  =====================================================
config                        name            term
============================  ==============  =====================================================
``model.loss``                ``pix``         :class:`PixelTerm` (final output) or, for cascaded
                                              networks, :class:`vsrlab.losses.levels.LevelTerm`
                                              (``model.level_weights``)
``model.offset_fidelity``     ``offset``      :class:`vsrlab.losses.OffsetFidelityTerm`
``model.aligned_lr_loss``     ``aligned_lr``  :class:`AlignedLRTerm`
============================  ==============  =====================================================

The step's loss is the sum of its terms; each is logged as ``train/loss_<name>`` when there are several.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

#: extra outputs a term may need: every level of a cascade (``forward(x, return_levels=True)``), the
#: offsets of every alignment module (:func:`vsrlab.ops.record_offsets`), the aligned LR frames
#: (``forward(x, return_aligned_lr=True)``)
NEEDS = ("levels", "offsets", "aligned_lr")


@dataclass
class StepOutputs:
    """What one training step produced.

    Attributes:
        batch: the batch (``lq`` ``(B, T, C, h, w)``, ``gt``, ``flow`` when the data has it).
        out: the network's final output, ``(B, C, H, W)`` (windows) or ``(B, T, C, H, W)`` (recurrent).
        target: the GT of ``out``, same shape.
        center: index of the window's centre frame.
        levels: every level's output, coarse to fine (when a term needs ``levels``).
        offsets: the offsets of each alignment module, one tensor per call (when a term needs ``offsets``).
        aligned_lr: the aligned LR frames ``(B, T, C, h, w)`` (when a term needs ``aligned_lr``).
    """

    batch: dict[str, Any]
    out: Tensor
    target: Tensor
    center: int
    levels: list[Tensor] | None = None
    offsets: dict[str, list[Tensor]] = field(default_factory=dict)
    aligned_lr: Tensor | None = None


class LossTerm(ABC):
    """One term of the training loss: ``term(step) -> (loss, scores)``; ``scores`` are logged as
    ``train/<key>``."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def __call__(self, step: StepOutputs) -> tuple[Tensor, dict[str, Tensor]]: ...


class PixelTerm(LossTerm):
    """``loss_fn(out, target)`` on the final output (``model.loss``)."""

    name = "pix"

    def __init__(self, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.loss_fn = loss_fn

    def __call__(self, step: StepOutputs) -> tuple[Tensor, dict[str, Tensor]]:
        return self.loss_fn(step.out, step.target), {}


class AlignedLRTerm(LossTerm):
    """``loss_fn(aligned LR frames, centre LR frame)`` (TDAN's auxiliary loss, ``model.aligned_lr_loss``)."""

    name = "aligned_lr"
    needs = frozenset({"aligned_lr"})

    def __init__(self, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.loss_fn = loss_fn

    def __call__(self, step: StepOutputs) -> tuple[Tensor, dict[str, Tensor]]:
        aligned = step.aligned_lr
        if aligned is None:
            raise ValueError("the aligned-LR term needs the network's aligned LR frames")
        centre = step.batch["lq"][:, step.center, None].expand_as(aligned)
        return self.loss_fn(aligned, centre), {}
