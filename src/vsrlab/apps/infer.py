"""``vsrlab-infer``'s app: real videos (a video file or a folder of frames) super-resolved.

    vsrlab-infer ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt input=clip.mp4 output=out/
    vsrlab-infer arch=edvr arch.pretrained=EDVR_M.pth input=frames/ output=sr.mkv
    vsrlab-infer arch=bicubic input=clip.mp4 output=sr.mkv frames_per_chunk=60 device=cuda

The model is a vsrlab Lightning checkpoint (``ckpt_path``, its architecture replaces ``arch=...``) or
the network of ``arch`` (with ``arch.pretrained`` official BasicSR / MMagic weights, or ``ckpt_path``
pointing at such a file). ``input`` is any video FFmpeg decodes (read frame by frame through
``cv2.VideoCapture``) or a folder of image frames (natural order). ``output`` is a folder (one PNG
per frame, ``00000000.png``, ...) or a ``.mkv`` / ``.avi`` / ``.mp4`` file written through PyAV
(``output_codec``: lossless ``ffv1`` by default for .mkv / .avi, ``h264`` at ``output_quality`` CRF 18
for .mp4; the input's frame rate).

Frames are streamed: chunks of ``frames_per_chunk`` frames are super-resolved with ``overlap`` LR frames
of context on each side and only the chunk's own frames are written, so at most
``frames_per_chunk + 2 * overlap`` LR frames are held whatever the video's length. For sliding-window
networks the result equals :func:`vsrlab.inference.clip.predict_clip` on the whole clip exactly (every window
lies inside its chunk's context; windows at the true clip ends are padded as
``model.evaluation.padding`` says; forward batches are the whole clip's); recurrent networks see
each chunk with its context, an approximation of whole-clip propagation that improves with
``overlap``. LR frames are
reflect-padded to a multiple of ``pad_to`` (EDVR's pyramid needs 4) and the output cropped back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from vsrlab.engine import load_model, resolve_device
from vsrlab.inference.stream import default_overlap, super_resolve_stream
from vsrlab.inference.video_io import DEFAULT_FPS, FrameWriter, iter_frames, probe_input
from vsrlab.utils.images import to_uint8_hwc

log = logging.getLogger(__name__)


def infer(cfg: DictConfig) -> dict[str, Any]:
    """Super-resolve ``cfg.input`` into ``cfg.output`` with the model of ``cfg``; returns a summary.

    Returns:
        ``{'frames', 'input_size': [h, w], 'output_size': [H, W], 'seconds', 'fps', 'output', 'device'}``.
    """
    info = probe_input(cfg.input)
    device = resolve_device(str(cfg.get("device") or "auto"))
    model = load_model(cfg).eval().to(device)
    model.refuse_batch_flows("a video stream")
    net, padding = model.evaluation_net(), model.eval_cfg["padding"]
    frames = iter_frames(info.path)
    overlap = cfg.get("overlap")
    if overlap is None:
        overlap = default_overlap(net, padding, int(cfg.get("recurrent_overlap", 5)))
    fps = float(cfg.get("fps") or info.fps or DEFAULT_FPS)
    input_size: tuple[int, ...] | None = None

    def counted() -> Iterator[np.ndarray]:
        nonlocal input_size
        for frame in frames:
            input_size = input_size or frame.shape[:2]
            yield frame

    log.info(
        "%s (%s frames, %s) -> %s: %s, frames_per_chunk=%d, overlap=%d, device=%s",
        info.path,
        info.num_frames or "?",
        info.kind,
        cfg.output,
        type(model.net).__name__,
        cfg.frames_per_chunk,
        overlap,
        device,
    )
    start = time.perf_counter()
    bar = tqdm(
        total=info.num_frames, unit="frame", desc="vsrlab-infer", disable=not cfg.get("progress", True)
    )
    with FrameWriter(cfg.output, fps, cfg.get("output_codec"), cfg.get("output_quality")) as writer, bar:
        for out in super_resolve_stream(
            net, counted(), int(cfg.frames_per_chunk), overlap, int(cfg.get("pad_to") or 1), device,
            padding=padding, windows_per_forward=int(model.eval_cfg["windows_per_forward"]),
        ):  # fmt: skip
            for frame in to_uint8_hwc(out):
                writer.write(frame)
            bar.update(out.shape[0])
    seconds = time.perf_counter() - start
    summary = {
        "frames": writer.count,
        "input_size": list(input_size or ()),
        "output_size": list(writer.size or ()),
        "seconds": round(seconds, 3),
        "fps": fps,
        "output": str(writer.path),
        "device": str(device),
    }
    log.info(
        "super-resolved %d frames %s -> %s (WxH) in %.1f s (%.2f frames/s) into %s",
        writer.count,
        _wxh(input_size),
        _wxh(writer.size),
        seconds,
        writer.count / max(seconds, 1e-9),
        writer.path,
    )
    return summary


def _wxh(size: tuple[int, ...] | None) -> str:
    return f"{size[1]}x{size[0]}" if size else "?"
