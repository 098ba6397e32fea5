"""Offset-fidelity loss (Chan et al., "Understanding Deformable Alignment in VSR", AAAI 2021, Eq. 4-5).

Deformable alignment trained by the SR loss alone can drift into offsets that have nothing to
do with motion (offset overflow, Sec. 4.3); the loss pulls every offset towards the optical flow
wherever it strays by more than a threshold ``t``:

    L = lambda * sum_{n, k}  mean_{c, h, w}  1[|o_k - f| > t] * |o_k - f|

with ``o_k`` the k-th ``(dy, dx)`` offset pair and ``f`` the flow flipped to ``(y, x)``. The
argument layout and the normalisation (mean over the ``(2, h, w)`` of each offset pair, sum over
pairs and batch) follow the authors' released implementation, so its ``lambda`` values carry over.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.spynet_arch import flow_from_frame, frozen_spynet
from vsrlab.losses.terms import LossTerm, StepOutputs
from vsrlab.utils.precision import at_least_float32


def offset_fidelity_loss(offset: Tensor, flow: Tensor, threshold: float = 10.0) -> Tensor:
    """Unweighted Eq. 5.

    Args:
        offset: ``(n, 2K, h, w)`` offsets in ``(y, x)`` pairs (DCN layout, K = G * N).
        flow: ``(n, 2, h, w)`` optical flow in ``(x, y)`` order, in the offsets' pixel units.
        threshold: ``t``; differences at or below it cost nothing.

    Returns:
        Scalar loss.
    """
    n, c, h, w = offset.shape
    if c % 2 or flow.shape != (n, 2, h, w):
        raise ValueError(
            f"offset (n, 2K, h, w) and flow (n, 2, h, w) expected, got {tuple(offset.shape)} and "
            f"{tuple(flow.shape)}"
        )
    offset, flow = at_least_float32(offset), at_least_float32(flow)
    diff = (offset.view(n, c // 2, 2, h, w) - flow.flip(1).unsqueeze(1)).abs()
    masked = torch.where(diff > threshold, diff, torch.zeros_like(diff))
    return masked.mean(dim=(2, 3, 4)).sum()


class OffsetFidelityLoss(nn.Module):
    """``loss_weight * offset_fidelity_loss(offset, flow, threshold)``; see :func:`offset_fidelity_loss`.

    Args:
        loss_weight: lambda of Eq. 5.
        threshold: t of Eq. 5, in pixels.
    """

    def __init__(self, loss_weight: float = 1.0, threshold: float = 10.0) -> None:
        super().__init__()
        self.loss_weight, self.threshold = loss_weight, threshold

    def forward(self, offset: Tensor, flow: Tensor) -> Tensor:
        return self.loss_weight * offset_fidelity_loss(offset, flow, self.threshold)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, threshold={self.threshold}"


FLOW_SOURCES = ("batch", "spynet")


class OffsetFidelityTerm(LossTerm):
    """The offset-fidelity term of a training step: :class:`OffsetFidelityLoss` over the offsets of
    every alignment module of a sliding-window network, towards the flow from every frame of the
    window to its centre.

    Args:
        loss: the configured :class:`OffsetFidelityLoss` (``loss_weight``, ``threshold``).
        flow: ``'batch'`` — the batch carries it (``flow`` ``(B, T, 2, h, w)``: the synthetic data's
            true flow, or precomputed ``.flo`` files); ``'spynet'`` — a frozen SPyNet computes it on
            the LR frames (``spynet_path``: its weights). The teacher is no submodule of the model:
            never trained, never saved.
        spynet_path: weights of the SPyNet teacher (``flow='spynet'``).

    Flows are resized to each module's resolution (pyramid levels) with their vectors rescaled.
    """

    name = "offset"
    needs = frozenset({"offsets"})

    def __init__(self, loss: nn.Module, flow: str = "batch", spynet_path: str | None = None) -> None:
        if flow not in FLOW_SOURCES:
            raise ValueError(f"model.offset_fidelity.flow must be one of {FLOW_SOURCES}, got {flow!r}")
        self.loss, self.flow, self.spynet_path = loss, flow, spynet_path
        self._teacher: nn.Module | None = None

    @classmethod
    def from_config(cls, cfg: dict | None, net: nn.Module) -> OffsetFidelityTerm | None:
        """The term of ``model.offset_fidelity`` (``{loss, flow, spynet_path}``) for ``net``; None when
        the config has no loss.

        Raises:
            ValueError: ``net`` is recurrent (its offsets do not align frames to a window centre).
        """
        if not (cfg or {}).get("loss"):
            return None
        from hydra.utils import instantiate

        from vsrlab.archs.contract import is_recurrent

        if is_recurrent(net):
            raise ValueError(
                f"model.offset_fidelity needs a sliding-window network; {type(net).__name__} is recurrent"
            )
        return cls(instantiate(cfg["loss"]), cfg.get("flow", "batch"), cfg.get("spynet_path"))

    def teacher_flow(self, lq: Tensor, center: int) -> Tensor:
        """Flow ``(B, T, 2, h, w)`` from the centre frame to every frame by the frozen SPyNet."""
        if self._teacher is None:
            import warnings

            if not self.spynet_path:
                warnings.warn(
                    "model.offset_fidelity.spynet_path is null: the SPyNet teacher of the offset-fidelity "
                    "loss "
                    "has random weights and its flow is meaningless (fine for smoke tests only)",
                    stacklevel=2,
                )
            self._teacher = frozen_spynet(self.spynet_path)
        return flow_from_frame(self._teacher.to(lq.device), lq, center)

    def __call__(self, step: StepOutputs) -> tuple[Tensor, dict[str, Tensor]]:
        """The term for one step (its offsets as :func:`vsrlab.ops.record_offsets` collected them)."""
        from vsrlab.ops import offsets_per_frame, resize_flow

        batch, center = step.batch, step.center
        lq = batch["lq"]
        b, t = lq.shape[:2]
        if self.flow == "batch":
            if "flow" not in batch:
                raise KeyError(
                    "model.offset_fidelity.flow='batch' but the batch has no 'flow' "
                    "(use data with flow, or offset_fidelity.flow=spynet)"
                )
            flow = batch["flow"]
        else:
            flow = self.teacher_flow(lq, center)
        total = lq.new_zeros(())
        for calls in step.offsets.values():
            if calls:
                offset = offsets_per_frame(calls, b, t).flatten(0, 1)
                target = resize_flow(flow.flatten(0, 1).to(offset.dtype), tuple(offset.shape[-2:]))
                total = total + self.loss(offset, target)
        return total, {}
