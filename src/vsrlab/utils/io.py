"""Files that are either written completely or not at all."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", keep_previous: str | os.PathLike | None = None
) -> Iterator[IO]:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A process killed mid-write (pre-emption, out of memory, a full disk) leaves the previous
    file intact instead of a truncated one; the temporary file is removed on failure. With
    ``keep_previous``, the file being replaced is kept under that name (hard-linked, so ``path``
    exists at every moment).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.is_file():
            _keep(path, Path(keep_previous))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _keep(path: Path, previous: Path) -> None:
    staged = previous.with_name(f".{previous.name}.tmp-{os.getpid()}")
    staged.unlink(missing_ok=True)
    try:
        os.link(path, staged)
    except OSError:  # file systems without hard links
        shutil.copy2(path, staged)
    os.replace(staged, previous)
