"""Super-resolving a stream of frames chunk by chunk, with enough context on each side that every
sliding-window result equals the whole clip's (:mod:`vsrlab.inference.clip`), in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.contract import is_recurrent
from vsrlab.data.errors import DataError
from vsrlab.inference.clip import forward_windows, min_context
from vsrlab.models import VSRModule
from vsrlab.models.flow_source import batch_flows
from vsrlab.ops.windows import window_indices
from vsrlab.utils.images import frames_to_tensor


def min_overlap(model: VSRModule) -> int:
    """The least context that makes chunked sliding-window results exact (0 for recurrent nets)."""
    return min_context(model.evaluation_net(), model.eval_cfg["padding"])


def default_overlap(model: VSRModule, recurrent_overlap: int = 5) -> int:
    """:func:`min_overlap` for sliding-window nets, else ``recurrent_overlap``."""
    return recurrent_overlap if model.is_recurrent else min_overlap(model)


@dataclass
class Chunk:
    """LR frames ``frames[i]`` (global index ``start + i``) around core frames ``[core_start, core_stop)``.

    ``total`` is the clip's length once the input has ended within this chunk's context, else None.
    """

    frames: list[np.ndarray]
    start: int
    core_start: int
    core_stop: int
    total: int | None

    @property
    def known(self) -> int:
        """Frames read so far (global index of the last context frame + 1)."""
        return self.start + len(self.frames)


def iter_chunks(frames: Iterable[np.ndarray], chunk_size: int, overlap: int) -> Iterator[Chunk]:
    """Cut a frame stream into chunks of ``chunk_size`` core frames with ``overlap`` frames of context.

    At most ``chunk_size + 2 * overlap`` frames are held at any time; the context is cut at the
    clip's ends.
    """
    if chunk_size < 1 or overlap < 0:
        raise ValueError(f"need chunk_size >= 1 and overlap >= 0, got {chunk_size} and {overlap}")
    source = iter(frames)
    buffer: deque[np.ndarray] = deque()
    start = core = 0
    ended = False
    while True:
        while not ended and start + len(buffer) < core + chunk_size + overlap:
            try:
                buffer.append(next(source))
            except StopIteration:
                ended = True
        known = start + len(buffer)
        if core >= known:
            return
        stop = min(core + chunk_size, known)
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
    model: VSRModule, chunk: Chunk, pad_to: int = 4, device: torch.device | str = "cpu"
) -> Tensor:
    """The super-resolved core frames of ``chunk``: ``(core_stop - core_start, C, s*h, s*w)``, unclamped.

    Sliding-window networks get one window per core frame (indices as
    :func:`~vsrlab.ops.windows.window_indices` gives them for the frames known so far: only windows at
    the true clip ends are padded), forwarded in :func:`vsrlab.inference.clip.forward_windows`'s batches,
    those of the whole clip; recurrent networks see the whole context.
    """
    sizes = {f.shape for f in chunk.frames}
    if len(sizes) > 1:
        raise DataError(f"frames {chunk.start}..{chunk.known - 1} differ in size: {sorted(sizes)}")
    lq = frames_to_tensor(np.stack(chunk.frames)).to(device)  # (T, C, h, w)
    h, w = lq.shape[-2:]
    lq = _pad_spatial(lq, max(int(pad_to), 1))
    net = model.evaluation_net()
    batch_flows({}, "flow_pairs", getattr(model, "flow_source", None), "video stream")  # none: refused
    if is_recurrent(net):
        out = net(lq.unsqueeze(0))[0, chunk.core_start - chunk.start : chunk.core_stop - chunk.start]
    else:
        n, padding = int(net.num_frame), model.eval_cfg["padding"]
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
        out = forward_windows(net, lq, index, frames, int(model.eval_cfg["chunk_size"]))
    scale = out.shape[-1] // lq.shape[-1]
    if out.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
        raise ValueError(
            f"{type(net).__name__} maps {tuple(lq.shape[-2:])} to {tuple(out.shape[-2:])}, not an integer "
            "scale"
        )
    return out[..., : h * scale, : w * scale]


@torch.inference_mode()
def super_resolve_stream(
    model: VSRModule,
    frames: Iterable[np.ndarray],
    chunk_size: int = 32,
    overlap: int | None = None,
    pad_to: int = 4,
    device: torch.device | str = "cpu",
) -> Iterator[Tensor]:
    """Super-resolve a stream of ``(h, w, 3)`` uint8 RGB frames chunk by chunk.

    Args:
        model: a :class:`VSRModule` on ``device``, in eval mode.
        frames: LR frames in order, e.g. :func:`iter_frames` (consumed lazily).
        chunk_size: output frames per chunk.
        overlap: LR frames of context on each side; None: :func:`default_overlap`. Sliding-window
            networks need at least :func:`min_overlap`.
        pad_to: reflect-pad LR frames to multiples of this and crop the output back.
        device: where the frames are processed.

    Yields:
        ``(n, C, s*h, s*w)`` float tensors on ``device``: consecutive runs of output frames, in
        order, ``chunk_size`` at a time (fewer in the last). For sliding-window networks their
        concatenation equals ``model.predict_clip`` of the whole clip: the same windows, and, when
        ``chunk_size`` is a multiple of ``model.evaluation.chunk_size``, the same forward batches,
        hence bitwise equal. Other chunk sizes can differ by float rounding where a kernel's
        arithmetic depends on the batch size (1 ulp for a batch of one window on CPU).
    """
    overlap = default_overlap(model) if overlap is None else int(overlap)
    if overlap < min_overlap(model):
        raise ValueError(
            f"overlap={overlap} is too small for {model.evaluation_net().num_frame}-frame windows with "
            f"{model.eval_cfg['padding']!r} padding: need >= {min_overlap(model)}"
        )
    for chunk in iter_chunks(frames, int(chunk_size), overlap):
        yield super_resolve_chunk(model, chunk, pad_to, device)
