"""Video in and out for ``vsrlab-infer``: frames read lazily from a video file (anything FFmpeg
decodes) or a folder of images, and written to a folder of PNGs or a video file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from vsrlab.data.errors import DataError
from vsrlab.data.image_io import list_frames, read_image
from vsrlab.utils.images import save_rgb

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mkv", ".avi", ".mp4", ".mov")
CODECS = {"ffv1": "FFV1", "mjpg": "MJPG", "mp4v": "mp4v"}
DEFAULT_CODEC = {".mkv": "ffv1", ".avi": "ffv1", ".mp4": "mp4v", ".mov": "mp4v"}
DEFAULT_FPS = 25.0


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
