"""Clip lists and frame keys: BasicSR meta files, Vimeo-style clip lists, and the frame-number
check of a clip."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vsrlab.data.errors import DataError


def read_meta_file(path: str | os.PathLike) -> list[tuple[str, int | None]]:
    """Clips of a meta file: BasicSR's ``<clip> <num_frames> (h,w,c)`` lines or bare clip names
    (Vimeo-90K's ``sep_trainlist.txt``: ``00001/0001``); ``#`` comments and blank lines are
    skipped. Returns ``(clip, num_frames or None)`` pairs."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"meta file not found: {path}")
    clips = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        count = None
        if len(parts) > 1 and parts[1].isdigit():
            count = int(parts[1])
        elif len(parts) > 1 and not parts[1].startswith("("):
            raise DataError(f"{path}:{number}: expected '<clip> [<num_frames> (h,w,c)]', got {line!r}")
        clips.append((parts[0].strip("/"), count))
    if not clips:
        raise DataError(f"meta file lists no clips: {path}")
    return clips


def read_clip_list(path: str | os.PathLike) -> list[str]:
    """Clip names of a meta file or clip list (see :func:`read_meta_file`)."""
    return [clip for clip, _ in read_meta_file(path)]


def clip_of(key: str) -> str:
    """The clip part of a frame key (``'000/00000000'`` -> ``'000'``)."""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def frame_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def check_numbering(names: list[str], where: str) -> None:
    """Refuse a gap in frame numbering (``frame 3, frame 5``) when every name ends in a number."""
    numbers = [re.search(r"(\d+)\D*$", n) for n in names]
    if len(names) < 2 or not all(numbers):
        return
    values = [int(m.group(1)) for m in numbers]
    for prev, cur, a, b in zip(values, values[1:], names, names[1:], strict=False):
        if cur != prev + 1:
            missing = f"frame {prev + 1}" if cur == prev + 2 else f"frames {prev + 1}..{cur - 1}"
            raise DataError(
                f"frames jump from {a!r} to {b!r} in {where}: {missing} missing "
                "(set check_numbering=false if the gap is intended)"
            )
