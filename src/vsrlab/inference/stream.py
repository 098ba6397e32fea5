"""Super-resolving a stream of frames chunk by chunk, with enough context on each side that every
sliding-window result equals the whole clip's (:mod:`vsrlab.inference.clip`), in bounded memory. The
functions take a network and its evaluation options (``padding`` of windows at the clip ends,
``windows_per_forward``), not a LightningModule: :meth:`vsrlab.models.VSRModule.super_resolve` and
``vsrlab-infer`` pass theirs."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.contract import is_recurrent
from vsrlab.data.errors import DataError
from vsrlab.inference.clip import forward_windows, min_context
from vsrlab.ops.windows import Padding, window_indices
from vsrlab.utils.images import frames_to_tensor

#: a frame of a stream: ``(h, w, 3)`` uint8 RGB, or a ``(C, h, w)`` float tensor in [0, 1]
Frame = np.ndarray | Tensor


def default_overlap(net: nn.Module, padding: Padding = "reflection", recurrent_overlap: int = 5) -> int:
    """The least context that makes chunked sliding-window results exact
    (:func:`~vsrlab.inference.clip.min_context`); ``recurrent_overlap`` for recurrent nets."""
    return recurrent_overlap if is_recurrent(net) else min_context(net, padding)


@dataclass
class Chunk:
    """LR frames ``frames[i]`` (global index ``start + i``) around core frames ``[core_start, core_stop)``.

    ``total`` is the clip's length once the input has ended within this chunk's context, else None.
    """

    frames: list[Frame]
    start: int
    core_start: int
    core_stop: int
    total: int | None

    @property
    def known(self) -> int:
        """Frames read so far (global index of the last context frame + 1)."""
        return self.start + len(self.frames)


def iter_chunks(frames: Iterable[Frame], frames_per_chunk: int, overlap: int) -> Iterator[Chunk]:
    """Cut a frame stream into chunks of ``frames_per_chunk`` core frames with ``overlap`` frames of
    context.

    At most ``frames_per_chunk + 2 * overlap`` frames are held at any time; the context is cut at the
    clip's ends.
    """
    if frames_per_chunk < 1 or overlap < 0:
        raise ValueError(f"need frames_per_chunk >= 1 and overlap >= 0, got {frames_per_chunk} and {overlap}")
    source = iter(frames)
    buffer: deque[Frame] = deque()
    start = core = 0
    ended = False
    while True:
        while not ended and start + len(buffer) < core + frames_per_chunk + overlap:
            try:
                buffer.append(next(source))
            except StopIteration:
                ended = True
        known = start + len(buffer)
        if core >= known:
            return
        stop = min(core + frames_per_chunk, known)
        yield Chunk(list(buffer), start, core, stop, known if ended else None)
        core = stop
        while start < core - overlap:
            buffer.popleft()
            start += 1


def _pad_spatial(lq: Tensor, pad_to: int) -> Tensor:
    """Reflect-pad ``(..., C, h, w)`` on the bottom and right to multiples of ``pad_to``."""
    h, w = lq.shape[-2:]
    ph, pw = (-h) % pad_to, (-w) % pad_to
    if not ph and not pw:
        return lq
    mode = "reflect" if ph < h and pw < w else "replicate"
    flat = lq.reshape(-1, *lq.shape[-3:])
    return F.pad(flat, (0, pw, 0, ph), mode=mode).reshape(*lq.shape[:-2], h + ph, w + pw)


def super_resolve_chunk(
    net: nn.Module,
    chunk: Chunk,
    pad_to: int = 4,
    device: torch.device | str = "cpu",
    *,
    padding: Padding = "reflection",
    windows_per_forward: int = 8,
) -> Tensor:
    """The super-resolved core frames of ``chunk``: ``(core_stop - core_start, C, s*h, s*w)``, unclamped.

    Sliding-window networks get one window per core frame (indices as
    :func:`~vsrlab.ops.windows.window_indices` gives them for the frames known so far: only windows at
    the true clip ends are padded), forwarded in :func:`vsrlab.inference.clip.forward_windows`'s batches,
    those of the whole clip; recurrent networks see the whole context.
    """
    sizes = {tuple(f.shape) for f in chunk.frames}
    if len(sizes) > 1:
        raise DataError(f"frames {chunk.start}..{chunk.known - 1} differ in size: {sorted(sizes)}")
    if isinstance(chunk.frames[0], Tensor):
        lq = torch.stack(chunk.frames).to(device)  # (T, C, h, w)
    else:
        lq = frames_to_tensor(np.stack(chunk.frames)).to(device)
    h, w = lq.shape[-2:]
    lq = _pad_spatial(lq, max(int(pad_to), 1))
    if is_recurrent(net):
        out = net(lq.unsqueeze(0))[0, chunk.core_start - chunk.start : chunk.core_stop - chunk.start]
    else:
        n = int(net.num_frame)
        total = chunk.total if chunk.total is not None else chunk.known
        frames = list(range(chunk.core_start, chunk.core_stop))
        windows = [[i - chunk.start for i in window_indices(t, total, n, padding)] for t in frames]
        if any(not 0 <= i < len(chunk.frames) for row in windows for i in row):
            raise ValueError(
                f"overlap is too small for {n}-frame windows with {padding!r} padding: "
                f"frames {chunk.start}..{chunk.known - 1} do not hold the windows of frames "
                f"{chunk.core_start}..{chunk.core_stop - 1} (need overlap >= {min_context(net, padding)})"
            )
        index = torch.tensor(windows, device=lq.device)
        out = forward_windows(net, lq, index, frames, int(windows_per_forward))
    scale = out.shape[-1] // lq.shape[-1]
    if out.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
        raise ValueError(
            f"{type(net).__name__} maps {tuple(lq.shape[-2:])} to {tuple(out.shape[-2:])}, not an integer "
            "scale"
        )
    return out[..., : h * scale, : w * scale]


@torch.inference_mode()
def super_resolve_stream(
    net: nn.Module,
    frames: Iterable[Frame],
    frames_per_chunk: int = 32,
    overlap: int | None = None,
    pad_to: int = 4,
    device: torch.device | str = "cpu",
    *,
    padding: Padding = "reflection",
    windows_per_forward: int = 8,
) -> Iterator[Tensor]:
    """Super-resolve a stream of frames chunk by chunk.

    Args:
        net: the network, on ``device``, in eval mode (e.g. ``VSRModule.evaluation_net()``).
        frames: LR frames in order (:data:`Frame`, e.g. :func:`iter_frames`; consumed lazily).
        frames_per_chunk: output frames per chunk.
        overlap: LR frames of context on each side; None: :func:`default_overlap`. Sliding-window
            networks need at least :func:`~vsrlab.inference.clip.min_context`.
        pad_to: reflect-pad LR frames to multiples of this and crop the output back.
        device: where the frames are processed.
        padding, windows_per_forward: the network's evaluation options (``model.evaluation``).

    Yields:
        ``(n, C, s*h, s*w)`` float tensors on ``device``: consecutive runs of output frames, in
        order, ``frames_per_chunk`` at a time (fewer in the last). For sliding-window networks their
        concatenation equals :func:`~vsrlab.inference.clip.predict_clip` of the whole clip: the same
        windows, and, when ``frames_per_chunk`` is a multiple of ``windows_per_forward``, the same
        forward batches, hence bitwise equal. Other chunk sizes can differ by float rounding where a
        kernel's arithmetic depends on the batch size (1 ulp for a batch of one window on CPU).
    """
    least = min_context(net, padding)
    overlap = default_overlap(net, padding) if overlap is None else int(overlap)
    if overlap < least:
        raise ValueError(
            f"overlap={overlap} is too small for {net.num_frame}-frame windows with {padding!r} padding: "
            f"need >= {least}"
        )
    for chunk in iter_chunks(frames, int(frames_per_chunk), overlap):
        yield super_resolve_chunk(
            net, chunk, pad_to, device, padding=padding, windows_per_forward=windows_per_forward
        )
