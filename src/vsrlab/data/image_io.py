"""Image files: which names are frames, their natural order, and decoding with errors that name
the file (truncated PNG and JPEG files are refused)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from vsrlab.data.errors import DataError
from vsrlab.utils.text import natural_key

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def png_shape(data: bytes) -> tuple[int, int, int] | None:
    """``(h, w, c)`` from a PNG's header, or ``None`` when ``data`` is not a PNG."""
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return h, w, _PNG_CHANNELS.get(data[25], 3)


def image_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """``(h, w, c)`` of an image file: from its header for PNG, else by decoding it."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as err:
        raise DataError(f"cannot read frame {path}: {err}") from None
    return png_shape(head) or read_image(path).shape


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` in natural order.

    Raises:
        DataError: the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"frame folder not found: {folder}")
    frames = sorted(
        (p for p in folder.iterdir() if p.is_file() and is_image(p.name)), key=lambda p: natural_key(p.name)
    )
    if not frames:
        raise DataError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return frames


def decode_image(data: bytes | np.ndarray, source: str) -> np.ndarray:
    """Decode an encoded image to ``(H, W, 3)`` uint8 RGB; ``source`` names it in errors.

    Truncated PNG and JPEG files are refused (cv2 would otherwise return a partly grey frame).
    16-bit images are scaled to 8 bits; grey images are replicated to three channels.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    raw = buf.tobytes()[:8]
    if not len(buf):
        raise DataError(f"empty image file: {source}")
    if raw.startswith(b"\x89PNG") and not buf[-12:].tobytes().endswith(_PNG_END):
        raise DataError(f"truncated PNG (no IEND chunk): {source}")
    if raw.startswith(b"\xff\xd8") and _JPEG_END not in buf[-16:].tobytes():
        raise DataError(f"truncated JPEG (no end-of-image marker): {source}")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot decode image (corrupt or not an image): {source}")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"unsupported image dtype {img.dtype}: {source}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    if img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img[..., ::-1])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (errors name the file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"frame not found: {path}") from None
    except OSError as err:
        raise DataError(f"cannot read frame {path}: {err}") from None
    return decode_image(data, str(path))
