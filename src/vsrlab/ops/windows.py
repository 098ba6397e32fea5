"""Temporal windows of sliding-window networks: which frames the window of a frame holds at the
ends of a clip (BasicSR's padding modes), and how far such a window reaches."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

Padding = Literal["replicate", "reflection", "reflection_circle", "circle"]
PADDINGS: tuple[Padding, ...] = ("replicate", "reflection", "reflection_circle", "circle")


def window_indices(
    center: int, num_total: int, num_frame: int, padding: Padding = "reflection", interval: int = 1
) -> list[int]:
    """Indices of the ``num_frame`` window centred on ``center`` in a clip of ``num_total`` frames.

    Frames are ``interval`` apart (BasicSR's ``interval_list``); intervals other than 1 allow
    ``replicate`` and ``reflection`` padding only.

    Out-of-range positions are filled as the reference toolkits do (BasicSR
    ``generate_frame_indices``), e.g. for ``center=0, num_frame=5``:
    replicate ``[0, 0, 0, 1, 2]``, reflection ``[2, 1, 0, 1, 2]``,
    reflection_circle ``[4, 3, 0, 1, 2]``, circle ``[3, 4, 0, 1, 2]``.
    """
    if num_frame % 2 == 0:
        raise ValueError(f"num_frame must be odd, got {num_frame}")
    if not 0 <= center < num_total:
        raise IndexError(f"center {center} is outside a clip of {num_total} frames")
    if interval < 1 or (interval > 1 and padding not in ("replicate", "reflection")):
        raise ValueError(f"interval {interval} needs replicate or reflection padding, got {padding!r}")
    last = num_total - 1
    half = num_frame // 2
    out = []
    for i in range(center - half * interval, center + half * interval + 1, interval):
        if 0 <= i <= last:
            out.append(i)
        elif padding == "replicate":
            out.append(0 if i < 0 else last)
        elif padding == "reflection":
            out.append(-i if i < 0 else 2 * last - i)
        elif padding == "reflection_circle":
            out.append(center + half - i if i < 0 else (center - half) - (i - last))
        elif padding == "circle":
            out.append(num_frame + i if i < 0 else i - num_frame)
        else:
            raise ValueError(
                f"padding must be replicate, reflection, reflection_circle or circle, got {padding!r}"
            )
    if any(not 0 <= i <= last for i in out):
        raise ValueError(
            f"a clip of {num_total} frames is too short for a {num_frame}-frame window "
            f"with {padding!r} padding"
        )
    return out


@lru_cache(maxsize=64)
def window_reach(num_frame: int, padding: Padding = "reflection") -> int:
    """The largest distance between a frame and a frame of its window, anywhere in a clip: the
    context a chunk of a stream needs on each side so that every window lies inside it. Measured
    on :func:`window_indices` itself (``num_frame // 2``, ``num_frame - 1`` for the circular
    paddings, whose windows at a clip end wrap within the window)."""
    length = 4 * num_frame
    return max(abs(i - t) for t in range(length) for i in window_indices(t, length, num_frame, padding))
