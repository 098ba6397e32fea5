"""Super-resolving a whole clip with any vsrlab network: one mechanism for validation, test,
``vsrlab-infer``'s streams and the analysis tools.

Sliding-window networks see one window per wanted frame (:func:`vsrlab.ops.windows.window_indices`,
padded at the clip ends), forwarded in batches that start at every frame number that is a multiple
of ``windows_per_forward`` (:func:`forward_windows`): a stream cut into chunks anywhere forwards the
very batches the whole clip would, so chunked results are bitwise equal. Recurrent networks see
the whole clip, optionally followed by its time reversal (``mirror``). Flows given with a clip
(``flow_pairs``, ``model.flow_source=batch``) reach a sliding-window network window by window
(:func:`window_flows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import is_recurrent
from vsrlab.ops import alignment_modules, offset_diversity, record_offsets
from vsrlab.ops.windows import Padding, window_indices, window_reach


def batch_bounds(frames: Sequence[int], windows_per_forward: int) -> list[tuple[int, int]]:
    """``(start, stop)`` positions in ``frames`` of the forward batches: a batch starts at the first
    frame and at every frame whose number is a multiple of ``windows_per_forward``, and holds at
    most ``windows_per_forward`` windows."""
    per = max(int(windows_per_forward), 1)
    starts = [0]
    for pos in range(1, len(frames)):
        if frames[pos] % per == 0 or pos - starts[-1] >= per:
            starts.append(pos)
    return list(zip(starts, [*starts[1:], len(frames)], strict=True))


def window_flows(flow_pairs: Tensor, windows: Tensor, frames: Sequence[int]) -> Tensor:
    """The flows ``(len(frames), num_frame, 2, h, w)`` of the windows ``(len(frames), num_frame)`` of
    ``frames``, from each window's centre to each of its frames: ``flow_pairs[frames[i], windows[i]]``,
    ``flow_pairs`` ``(L, L, 2, h, w)`` holding the flow from frame ``c`` to frame ``t`` at ``[c, t]``
    (a position the padding fills with a repeated or reflected frame gets the flow to that frame)."""
    centres = torch.as_tensor(list(frames), dtype=torch.long, device=flow_pairs.device)
    return flow_pairs[centres[:, None], windows.to(flow_pairs.device)]


def forward_windows(
    net: nn.Module,
    lq: Tensor,
    windows: Tensor,
    frames: Sequence[int],
    windows_per_forward: int,
    flows: Tensor | None = None,
) -> Tensor:
    """Outputs ``(len(frames), C, s*h, s*w)`` of a sliding-window network for the windows
    ``(len(frames), num_frame)`` (indices into the LR frames ``lq`` ``(L, C, h, w)``) of ``frames``,
    forwarded in the batches of :func:`batch_bounds`; ``flows`` ``(len(frames), num_frame, 2, h, w)``
    (:func:`window_flows`), when given, go to ``net(windows, flows=...)``."""
    bounds = batch_bounds(frames, windows_per_forward)
    if flows is None:
        return torch.cat([net(lq[windows[a:b]]) for a, b in bounds])
    return torch.cat([net(lq[windows[a:b]], flows=flows[a:b]) for a, b in bounds])


def predict_clip(
    net: nn.Module,
    lq: Tensor,
    frames: Sequence[int] | None = None,
    *,
    mirror: bool = False,
    padding: Padding = "reflection",
    windows_per_forward: int = 8,
    flow_pairs: Tensor | None = None,
) -> Tensor:
    """Super-resolve a clip ``(L, C, h, w)`` -> ``(len(frames), C, s*h, s*w)`` (default: every frame).

    Sliding-window networks see one window per wanted frame, padded at the clip ends as ``padding``
    says, and with ``flow_pairs`` ``(L, L, 2, h, w)`` (flow from frame ``c`` to frame ``t`` at
    ``[c, t]``) each window's flows (:func:`window_flows`); recurrent networks see the whole clip,
    with ``mirror`` followed by its time reversal (the outputs of a frame's two positions averaged:
    MMagic's Vimeo-90K-T convention).
    """
    length = lq.shape[0]
    frames = list(range(length)) if frames is None else list(frames)
    if flow_pairs is not None and tuple(flow_pairs.shape[:3]) != (length, length, 2):
        raise ValueError(f"flow_pairs must be ({length}, {length}, 2, h, w), got {tuple(flow_pairs.shape)}")
    if is_recurrent(net):
        if flow_pairs is not None:
            raise ValueError(f"{type(net).__name__} is recurrent: it takes no window flows")
        if mirror:
            out = net(torch.cat([lq, lq.flip(0)]).unsqueeze(0))[0]
            out = 0.5 * (out[:length] + out[length:].flip(0))
        else:
            out = net(lq.unsqueeze(0))[0]
        return out[frames]
    windows = torch.tensor(
        [window_indices(t, length, net.num_frame, padding) for t in frames], device=lq.device
    )
    flows = None if flow_pairs is None else window_flows(flow_pairs, windows, frames)
    return forward_windows(net, lq, windows, frames, windows_per_forward, flows)


def min_context(net: nn.Module, padding: Padding = "reflection") -> int:
    """The LR frames of context a chunk of a stream needs on each side so that every window lies
    inside it (:func:`~vsrlab.ops.windows.window_reach`); 0 for recurrent networks (any context
    helps them, none makes them exact)."""
    return 0 if is_recurrent(net) else window_reach(int(net.num_frame), padding)


def window_offsets(
    net: nn.Module, lq: Tensor, padding: Padding = "reflection", flow_pairs: Tensor | None = None
) -> dict[str, Tensor]:
    """Offsets of every alignment module for the window centred on the middle frame of a clip
    ``(L, C, h, w)`` (sliding-window networks; given the window's flows from ``flow_pairs`` as
    :func:`predict_clip`): ``{module: (calls*B, 2*G*N, h', w')}``."""
    if is_recurrent(net):
        raise ValueError(f"window_offsets needs a sliding-window network, {type(net).__name__} is recurrent")
    length = lq.shape[0]
    window = torch.tensor([window_indices(length // 2, length, net.num_frame, padding)], device=lq.device)
    given = {} if flow_pairs is None else {"flows": window_flows(flow_pairs, window, [length // 2])}
    with torch.no_grad(), record_offsets(net) as records:
        net(lq[window], **given)
    return {name: torch.cat(calls) for name, calls in records.items() if calls}


def measure_offset_diversity(
    net: nn.Module,
    clips: Sequence[Tensor],
    padding: Padding = "reflection",
    flow_pairs: Sequence[Tensor | None] | None = None,
) -> dict[str, Any] | None:
    """Offset diversity (:func:`vsrlab.ops.offset_diversity`, pixels) of every alignment module on
    the centre windows of ``clips`` (with their ``flow_pairs``, when given), and their mean:
    ``{'mean', 'modules': {name: value}}``; None for networks without deformable alignment or
    recurrent ones (Chan et al. 2021, Fig. 9)."""
    modules = dict(alignment_modules(net))
    if is_recurrent(net) or not modules or not clips:
        return None
    device = next(net.parameters()).device
    pairs = list(flow_pairs) if flow_pairs is not None else [None] * len(clips)
    per_module: dict[str, list[float]] = {}
    for lq, flows in zip(clips, pairs, strict=True):
        flows = None if flows is None else flows.to(device)
        for name, offset in window_offsets(net, lq.to(device), padding, flows).items():
            per_module.setdefault(name, []).append(float(offset_diversity(offset, modules[name].taps).mean()))
    values = {name: sum(v) / len(v) for name, v in per_module.items()}
    return {"mean": sum(values.values()) / len(values), "modules": values} if values else None
