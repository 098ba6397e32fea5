"""Video in and out for ``vsrlab-infer``: frames read lazily from a video file (anything FFmpeg
decodes) or a folder of images, and written to a folder of PNGs or a video file (PyAV, FFmpeg's
encoders: lossless FFV1 or H.264 with a chosen quality, the input's frame rate)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from vsrlab.data.errors import DataError
from vsrlab.data.image_io import list_frames, read_image
from vsrlab.utils.images import save_rgb

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mkv", ".avi", ".mp4", ".mov")


@dataclass(frozen=True)
class Codec:
    """An ``output_codec``: FFmpeg's encoder, the pixel format it encodes, and how ``output_quality``
    reaches it (the encoder option and its default; None: no quality knob)."""

    encoder: str
    pix_fmt: str
    quality_option: str | None = None
    default_quality: int | None = None
    options: tuple[tuple[str, str], ...] = ()


CODECS = {
    "ffv1": Codec("ffv1", "bgr0"),  # lossless RGB
    "h264": Codec("libx264", "yuv420p", "crf", 18, (("preset", "medium"),)),  # CRF: 0 best .. 51 worst
    "h264_lossless": Codec("libx264rgb", "rgb24", None, None, (("crf", "0"), ("preset", "medium"))),
    "mjpg": Codec("mjpeg", "yuvj444p", "q:v", 2),  # full-resolution chroma; 2 best .. 31 worst
    "mp4v": Codec("mpeg4", "yuv420p", "q:v", 3),
}
DEFAULT_CODEC = {".mkv": "ffv1", ".avi": "ffv1", ".mp4": "h264", ".mov": "h264"}
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


def codec_of(name: str) -> Codec:
    """The :class:`Codec` of an ``output_codec`` name (case-insensitive)."""
    codec = CODECS.get(name.lower())
    if codec is None:
        raise ValueError(f"output_codec must be one of {sorted(CODECS)}, got {name!r}")
    return codec


class FrameWriter:
    """Writes ``(H, W, 3)`` uint8 RGB frames to a PNG folder or a video file (opened at the first frame).

    Args:
        output: a folder, or a file with a suffix of :data:`VIDEO_SUFFIXES`.
        fps: frames per second of a video (the input's, by ``vsrlab-infer``).
        codec: a key of :data:`CODECS`; None: :data:`DEFAULT_CODEC` of the suffix (lossless FFV1 for
            ``.mkv`` / ``.avi``, H.264 for ``.mp4`` / ``.mov``).
        quality: the codec's quality (H.264: CRF, default 18; MJPG / MP4V: q:v, default 3); None: its
            default. Lossless codecs take none.
    """

    def __init__(
        self,
        output: str | Path,
        fps: float = DEFAULT_FPS,
        codec: str | None = None,
        quality: int | None = None,
    ) -> None:
        self.path = Path(output)
        self.fps = float(fps)
        self.video = is_video_path(self.path)
        if not self.video and self.path.suffix and not self.path.is_dir():
            raise ValueError(
                f"output {self.path} is neither a folder nor a video file ({', '.join(VIDEO_SUFFIXES)})"
            )
        self.codec = (codec or DEFAULT_CODEC.get(self.path.suffix.lower(), "ffv1")) if self.video else None
        self.spec = codec_of(self.codec) if self.codec else None
        if quality is not None and self.spec is not None and self.spec.quality_option is None:
            raise ValueError(f"output_quality: output_codec={self.codec} is lossless and takes no quality")
        self.quality = quality
        self.count = 0
        self.size: tuple[int, int] | None = None  # (H, W)
        self._container: Any = None
        self._stream: Any = None
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
        if self._stream is not None:
            import av

            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        else:
            save_rgb(self.path / f"{self.count:08d}.png", frame)
        self.count += 1

    def _open(self, width: int, height: int) -> None:
        import av

        assert self.spec is not None
        if self.spec.pix_fmt.endswith("420p") and (width % 2 or height % 2):
            raise ValueError(
                f"output_codec={self.codec} needs an even frame size, got {width}x{height} "
                "(use output_codec=ffv1 or h264_lossless, or a folder of PNGs)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = dict(self.spec.options)
        if self.spec.quality_option is not None:
            quality = self.spec.default_quality if self.quality is None else self.quality
            options[self.spec.quality_option] = str(quality)
        try:
            container = av.open(str(self.path), "w")
            stream = container.add_stream(self.spec.encoder, rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, self.spec.pix_fmt
            stream.options = options
        except (av.FFmpegError, ValueError, OSError) as err:
            raise OSError(
                f"cannot write video {self.path} with codec {self.codec} ({self.spec.encoder}) at "
                f"{width}x{height}: {err} (try another output_codec or suffix, or a folder of PNGs)"
            ) from None
        self._container, self._stream = container, stream

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):  # flush the encoder
                self._container.mux(packet)
            self._container.close()
            self._container = self._stream = None

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
