"""``vsrlab-infer``: super-resolve a real video (a video file or a folder of frames).

    vsrlab-infer ckpt=logs/train/runs/<run>/checkpoints/last.ckpt input=clip.mp4 output=out/
    vsrlab-infer arch=edvr arch.pretrained=EDVR_M.pth input=frames/ output=sr.mkv
    vsrlab-infer arch=bicubic input=clip.mp4 output=sr.mkv chunk_size=60 device=cuda

The model is a vsrlab Lightning checkpoint (``ckpt``, its architecture replaces ``arch=...``) or
the network of ``arch`` (with ``arch.pretrained`` official BasicSR / MMagic weights, or ``ckpt``
pointing at such a file). ``input`` is any video FFmpeg decodes (read frame by frame through
``cv2.VideoCapture``) or a folder of image frames (natural order). ``output`` is a folder (one PNG
per frame, ``00000000.png``, ...) or a ``.mkv`` / ``.avi`` / ``.mp4`` file (``output_codec``: lossless
``ffv1`` by default for .mkv / .avi, ``mp4v`` for .mp4).

Frames are streamed: chunks of ``chunk_size`` frames are super-resolved with ``overlap`` LR frames
of context on each side and only the chunk's own frames are written, so at most
``chunk_size + 2 * overlap`` LR frames are held whatever the video's length. For sliding-window
networks the result equals :meth:`VSRModule.predict_clip` on the whole clip exactly (every window
lies inside its chunk's context; windows at the true clip ends are padded as
``model.evaluation.padding`` says; forward batches are predict_clip's when ``chunk_size`` is a
multiple of ``model.evaluation.chunk_size``, as the defaults 32 and 8 are); recurrent networks see
each chunk with its context, an approximation of whole-clip propagation that improves with
``overlap``. LR frames are
reflect-padded to a multiple of ``pad_to`` (EDVR's pyramid needs 4) and the output cropped back.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from tqdm import tqdm

from vsrlab.archs.pretrained import is_vsrlab_checkpoint
from vsrlab.data.frames import DataError, list_frames, read_image
from vsrlab.data.sampling import window_indices
from vsrlab.eval import load_model
from vsrlab.models import VSRModule
from vsrlab.train import CONFIG_DIR, setup_run
from vsrlab.utils.checkpoint import read_checkpoint
from vsrlab.utils.images import frames_to_tensor, save_rgb, to_uint8_hwc

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mkv", ".avi", ".mp4", ".mov")
CODECS = {"ffv1": "FFV1", "mjpg": "MJPG", "mp4v": "mp4v"}
DEFAULT_CODEC = {".mkv": "ffv1", ".avi": "ffv1", ".mp4": "mp4v", ".mov": "mp4v"}
DEFAULT_FPS = 25.0
# how far a window's frames may lie from its centre, in units of num_frame // 2, under each padding
_REACH = {"replicate": 1, "reflection": 1, "reflection_circle": 2, "circle": 2}


# ------------------------------------------------------------------------------------------ model
def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:<i>``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} but CUDA is not available (use device=cpu or device=auto)")
    return device


def load_infer_model(cfg: DictConfig) -> VSRModule:
    """The model of ``cfg.ckpt`` or ``cfg.arch``, in eval mode, on the CPU.

    A vsrlab Lightning checkpoint is rebuilt by :func:`vsrlab.eval.load_model` (architecture from
    the checkpoint, ``model.evaluation`` from ``cfg``); any other ``ckpt`` (BasicSR / MMagic /
    plain state dict) is loaded into ``cfg.arch`` as ``arch.pretrained``.

    Raises:
        FileNotFoundError: ``ckpt`` (or ``arch.pretrained``) does not exist; the message names it.
    """
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    ckpt_path = None
    if cfg.get("ckpt"):
        path = Path(cfg.ckpt)
        if is_vsrlab_checkpoint(read_checkpoint(path, mmap=True)):  # a peek; FileNotFoundError names the path
            ckpt_path = str(path)
        else:
            if model_cfg["arch"].get("pretrained"):
                log.warning("ckpt=%s replaces arch.pretrained=%s", path, model_cfg["arch"]["pretrained"])
            log.info(
                "%s is not a vsrlab Lightning checkpoint: loading it into arch %s",
                path,
                model_cfg["arch"]["_target_"],
            )
            model_cfg["arch"]["pretrained"] = str(path)
    model = load_model(OmegaConf.create({"ckpt_path": ckpt_path, "model": model_cfg}))
    model.setup("predict")  # loads arch.pretrained unless the weights came from a Lightning checkpoint
    return model.eval()


def min_overlap(model: VSRModule) -> int:
    """The least context that makes chunked sliding-window results exact (0 for recurrent nets)."""
    if model.is_recurrent:
        return 0
    padding = model.eval_cfg["padding"]
    if padding not in _REACH:
        raise ValueError(f"model.evaluation.padding must be one of {sorted(_REACH)}, got {padding!r}")
    return _REACH[padding] * (int(model.net.num_frame) // 2)


def default_overlap(model: VSRModule, recurrent_overlap: int = 5) -> int:
    """``num_frame // 2`` for sliding-window nets (``num_frame - 1`` for circular paddings), else
    ``recurrent_overlap``."""
    return recurrent_overlap if model.is_recurrent else min_overlap(model)


# ------------------------------------------------------------------------------------------ input
@dataclass
class InputInfo:
    """What is known about an input before decoding it."""

    path: Path
    kind: str  # "video" or "frames"
    num_frames: int | None  # exact for folders, the container's (possibly wrong) count for videos
    fps: float | None  # None for frame folders


def probe_input(path: str | Path) -> InputInfo:
    """Frame count and fps of a video file or frame folder, without decoding it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: a folder without image frames, or a file cv2 cannot open as a video.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        return InputInfo(path, "frames", len(list_frames(path)), None)
    cap = _open_video(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return InputInfo(path, "video", count if count > 0 else None, fps if fps > 0 else None)


def _open_video(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise DataError(
            f"cannot open video {path} (not a video, or a format this cv2/FFmpeg build does not "
            "decode); frame folders are read too"
        )
    return cap


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file or frame folder as ``(H, W, 3)`` uint8 RGB arrays, one at a time.

    Input problems (missing path, unreadable video, a video without frames, an empty folder)
    raise here, before the first frame is requested; a video is decoded lazily frame by frame.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: the input cannot be read (the message names the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        return (read_image(p) for p in list_frames(path))
    cap = _open_video(path)
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise DataError(f"video {path} has no frames that cv2 can decode")
    return _video_frames(cap, first)


def _video_frames(cap: cv2.VideoCapture, first: np.ndarray) -> Iterator[np.ndarray]:
    try:
        frame: np.ndarray | None = first
        while frame is not None:
            yield _bgr_to_rgb(frame)
            ok, frame = cap.read()
            if not ok:
                frame = None
    finally:
        cap.release()


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[..., None], 3, axis=2))
    return np.ascontiguousarray(frame[..., 2::-1])


# -------------------------------------------------------------------------------------- streaming
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

    Sliding-window networks get one window per core frame (indices as :func:`window_indices`
    gives them for the frames known so far: only windows at the true clip ends are padded), in
    forward batches cut at the multiples of ``model.eval_cfg['chunk_size']`` (global frame index),
    like :meth:`VSRModule.predict_clip`; recurrent networks see the whole context.
    """
    sizes = {f.shape for f in chunk.frames}
    if len(sizes) > 1:
        raise DataError(f"frames {chunk.start}..{chunk.known - 1} differ in size: {sorted(sizes)}")
    lq = frames_to_tensor(np.stack(chunk.frames)).to(device)  # (T, C, h, w)
    h, w = lq.shape[-2:]
    lq = _pad_spatial(lq, max(int(pad_to), 1))
    lo, hi = chunk.core_start - chunk.start, chunk.core_stop - chunk.start
    if model.is_recurrent:
        out = model.evaluation_net()(lq.unsqueeze(0))[0, lo:hi]
    else:
        n, padding = int(model.net.num_frame), model.eval_cfg["padding"]
        total = chunk.total if chunk.total is not None else chunk.known
        windows = [
            [i - chunk.start for i in window_indices(t, total, n, padding)]
            for t in range(chunk.core_start, chunk.core_stop)
        ]
        if any(not 0 <= i < len(chunk.frames) for row in windows for i in row):
            raise ValueError(
                f"overlap is too small for {n}-frame windows with {padding!r} padding: "
                f"frames {chunk.start}..{chunk.known - 1} do not hold the windows of frames "
                f"{chunk.core_start}..{chunk.core_stop - 1} "
                f"(need overlap >= {min_overlap(model)})"
            )
        index = torch.tensor(windows, device=lq.device)
        # forward batches cut at multiples of model.evaluation.chunk_size, as predict_clip cuts the
        # whole clip: with chunk_size a multiple of it, every batch is one of predict_clip's
        per_forward = int(model.eval_cfg["chunk_size"])
        cuts = [
            chunk.core_start,
            *range((chunk.core_start // per_forward + 1) * per_forward, chunk.core_stop, per_forward),
            chunk.core_stop,
        ]
        out = torch.cat(
            [
                model.evaluation_net()(lq[index[a - chunk.core_start : b - chunk.core_start]])
                for a, b in zip(cuts, cuts[1:], strict=False)
            ]
        )
    scale = out.shape[-1] // lq.shape[-1]
    if out.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
        raise ValueError(
            f"{type(model.net).__name__} maps {tuple(lq.shape[-2:])} to "
            f"{tuple(out.shape[-2:])}, not an integer scale"
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
            f"overlap={overlap} is too small for {model.net.num_frame}-frame windows with "
            f"{model.eval_cfg['padding']!r} padding: need >= {min_overlap(model)}"
        )
    for chunk in iter_chunks(frames, int(chunk_size), overlap):
        yield super_resolve_chunk(model, chunk, pad_to, device)


# ----------------------------------------------------------------------------------------- output
def is_video_path(path: str | Path) -> bool:
    """Whether ``output`` names a video file (by its suffix) rather than a frame folder."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir()


def fourcc_of(codec: str) -> str:
    """The FourCC of ``ffv1`` / ``mjpg`` / ``mp4v`` (case-insensitive) or of a literal 4-character code."""
    code = CODECS.get(codec.lower(), codec)
    if len(code) != 4:
        raise ValueError(
            f"output_codec must be one of {sorted(CODECS)} or a 4-character FourCC, got {codec!r}"
        )
    return code


class FrameWriter:
    """Writes ``(H, W, 3)`` uint8 RGB frames to a PNG folder or a video file (opened at the first frame)."""

    def __init__(self, output: str | Path, fps: float = DEFAULT_FPS, codec: str | None = None) -> None:
        self.path = Path(output)
        self.fps = float(fps)
        self.video = is_video_path(self.path)
        if not self.video and self.path.suffix and not self.path.is_dir():
            raise ValueError(
                f"output {self.path} is neither a folder nor a video file ({', '.join(VIDEO_SUFFIXES)})"
            )
        self.codec = (codec or DEFAULT_CODEC.get(self.path.suffix.lower(), "ffv1")) if self.video else None
        self.fourcc = fourcc_of(self.codec) if self.codec else None
        self.count = 0
        self.size: tuple[int, int] | None = None  # (H, W)
        self._writer: cv2.VideoWriter | None = None
        if not self.video:
            if self.path.is_dir() and any(self.path.iterdir()):
                log.warning(
                    "output folder %s is not empty: frames are overwritten, other files stay", self.path
                )
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, frame: np.ndarray) -> None:
        if self.size is None:
            self.size = frame.shape[:2]
            if self.video:
                self._open(frame.shape[1], frame.shape[0])
        elif frame.shape[:2] != self.size:
            raise ValueError(f"frame {self.count} is {frame.shape[:2]}, earlier frames were {self.size}")
        if self._writer is not None:
            self._writer.write(np.ascontiguousarray(frame[..., ::-1]))
        else:
            save_rgb(self.path / f"{self.count:08d}.png", frame)
        self.count += 1

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*self.fourcc)
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise OSError(
                f"cannot write video {self.path} with codec {self.codec} ({self.fourcc}) at "
                f"{width}x{height}: this cv2/FFmpeg build lacks the codec or the container "
                "refuses it (try output_codec=mjpg, another suffix, or a folder of PNGs)"
            )
        self._writer = writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -------------------------------------------------------------------------------------------- app
def infer(cfg: DictConfig) -> dict[str, Any]:
    """Super-resolve ``cfg.input`` into ``cfg.output`` with the model of ``cfg``; returns a summary.

    Returns:
        ``{'frames', 'input_size': [h, w], 'output_size': [H, W], 'seconds', 'fps', 'output', 'device'}``.
    """
    info = probe_input(cfg.input)
    device = resolve_device(str(cfg.get("device") or "auto"))
    model = load_infer_model(cfg).to(device)
    frames = iter_frames(info.path)
    overlap = cfg.get("overlap")
    if overlap is None:
        overlap = default_overlap(model, int(cfg.get("recurrent_overlap", 5)))
    fps = float(cfg.get("fps") or info.fps or DEFAULT_FPS)
    input_size: tuple[int, ...] | None = None

    def counted() -> Iterator[np.ndarray]:
        nonlocal input_size
        for frame in frames:
            input_size = input_size or frame.shape[:2]
            yield frame

    log.info(
        "%s (%s frames, %s) -> %s: %s, chunk_size=%d, overlap=%d, device=%s",
        info.path,
        info.num_frames or "?",
        info.kind,
        cfg.output,
        type(model.net).__name__,
        cfg.chunk_size,
        overlap,
        device,
    )
    start = time.perf_counter()
    bar = tqdm(
        total=info.num_frames, unit="frame", desc="vsrlab-infer", disable=not cfg.get("progress", True)
    )
    with FrameWriter(cfg.output, fps, cfg.get("output_codec")) as writer, bar:
        for out in super_resolve_stream(
            model, counted(), int(cfg.chunk_size), overlap, int(cfg.get("pad_to") or 1), device
        ):
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def main(cfg: DictConfig) -> None:
    """Console entry point (Hydra app)."""
    setup_run(cfg)
    infer(cfg)


if __name__ == "__main__":
    main()
