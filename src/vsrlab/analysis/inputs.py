"""What ``vsrlab-analyze`` looks at: a clip of a data config's test split or an image / video file, and the
network's view of it (a window for sliding-window networks, the clip for recurrent ones)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from vsrlab.archs.contract import is_recurrent, window_length
from vsrlab.data.image_io import is_image, read_image
from vsrlab.inference.video_io import iter_frames
from vsrlab.ops.windows import window_indices
from vsrlab.utils.images import frames_to_tensor

CLIP_KEYS = ("lq", "gt", "flow", "flow_valid", "flow_pairs")


def load_clip(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.input`` (an image, a video or a folder of frames; LR) or clip ``cfg.clip`` of ``cfg.data``'s
    test split, cut to ``cfg.frames`` (``[start, stop)``, optional): ``{"name", "lq" (L, C, h, w)}`` plus
    ``gt``, ``flow`` / ``flow_valid`` (from the clip's centre frame) and ``flow_pairs`` when the data has
    them.

    Raises:
        FileNotFoundError: ``input`` does not exist (naming it).
        IndexError: ``clip`` is outside the test split (naming its size).
    """
    if cfg.get("input"):
        path = Path(cfg.input)
        if not path.exists():
            raise FileNotFoundError(f"input: no image, video or frame folder at {path}")
        frames = [read_image(path)] if path.is_file() and is_image(path.name) else list(iter_frames(path))
        clip = {"name": path.stem, "lq": frames_to_tensor(np.stack(frames))}
    else:
        dataset = instantiate(cfg.data).test_set
        index = int(cfg.get("clip") or 0)
        if not 0 <= index < len(dataset):
            name = cfg.data.get("name")
            raise IndexError(f"clip={index}: the test split of data={name} has {len(dataset)} clips")
        sample = dataset[index]
        clip = {k: sample[k] for k in CLIP_KEYS if k in sample}
        clip["name"] = str(sample.get("key", f"clip{index}"))
    frames = cfg.get("frames")
    if frames:
        start, stop = int(frames[0]), int(frames[1])
        if not 0 <= start < stop <= len(clip["lq"]):
            raise ValueError(f"frames={list(frames)} outside the clip's {len(clip['lq'])} frames")
        clip = _cut(clip, start, stop)
    return clip


def _cut(clip: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    out = {k: v[start:stop] if k in ("lq", "gt") else v for k, v in clip.items()}
    if "flow_pairs" in clip:
        out["flow_pairs"] = clip["flow_pairs"][start:stop, start:stop]
        centre = (stop - start) // 2
        out["flow"] = out["flow_pairs"][centre]
        out.pop("flow_valid", None)  # valid masks are only known from the clip's own centre
    elif "flow" in clip:  # flows from the old centre do not describe the new one
        out.pop("flow")
        out.pop("flow_valid", None)
    return out


def network_view(net: nn.Module, lq: Tensor, frame: int | None = None) -> tuple[Tensor, int]:
    """The input ``net`` takes for output frame ``frame`` of the clip ``lq`` ``(L, C, h, w)`` (default the
    centre frame): ``(1, num_frame, C, h, w)`` — the window around it, reflected at the clip's ends — for a
    sliding-window network, the whole clip ``(1, L, C, h, w)`` for a recurrent one; with the index of the
    output frame within that input (the window's centre, or ``frame``)."""
    length = lq.shape[0]
    frame = length // 2 if frame is None else int(frame)
    if not 0 <= frame < length:
        raise ValueError(f"frame={frame} outside the clip's {length} frames")
    if is_recurrent(net):
        return lq[None], frame
    num_frame = window_length(net)
    if length == 1:  # one image: a static window
        return lq.expand(num_frame, *lq.shape[1:])[None], num_frame // 2
    window = window_indices(frame, length, num_frame, "reflection")
    return lq[torch.as_tensor(window)][None], num_frame // 2


def default_window(output_size: tuple[int, int], window_size: int) -> tuple[int, int]:
    """The output window at the centre of the image (the detector's grid is one pixel smaller)."""
    h, w = output_size
    return max(0, (h - 1 - window_size) // 2), max(0, (w - 1 - window_size) // 2)


def tool_options(tool: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The keys of ``tool`` that are ``names`` (others are the app's: ``name``)."""
    return {k: tool[k] for k in names if k in tool}
