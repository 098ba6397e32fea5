"""Frame stores: video frames from image folders or LMDB, with errors that name the file or key.

A *frame store* maps frame keys to images. A key is the frame's path relative to the store's
root without the extension, as in BasicSR's LMDBs: ``000/00000000`` (REDS),
``00001/0001/im4`` (Vimeo-90K), ``calendar/Frame 001`` (Vid4). The clip of a key is everything
before its last ``/``. Two stores exist:

- :class:`FolderStore`: a folder of clip folders of image files (any format cv2 decodes);
  frames are ordered naturally (``im2`` before ``im10``, ``Frame 9`` before ``Frame 10``).
- :class:`LmdbStore`: BasicSR's layout, ``data.mdb`` + ``meta_info.txt`` with one line
  ``<key>.png (h,w,c) <compression>`` per image; values are encoded images. The environment is
  opened lazily in the process that reads (each DataLoader worker opens its own).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vsrlab.data.clip_lists import clip_of, frame_name
from vsrlab.data.errors import DataError
from vsrlab.data.image_io import decode_image, image_shape, is_image, list_frames, read_image
from vsrlab.data.process import configure_process, lmdb_env
from vsrlab.utils.text import natural_key

Backend = Literal["auto", "folder", "lmdb"]


class FrameStore:
    """Common interface of the frame stores: clip listing and frame reading by key."""

    root: Path

    def clips(self, depth: int = 1) -> list[str]:
        raise NotImplementedError

    def frames(self, clip: str) -> list[str]:
        """Frame keys of ``clip`` in natural order."""
        raise NotImplementedError

    def read(self, key: str) -> np.ndarray:
        """The frame ``key`` as ``(H, W, 3)`` uint8 RGB."""
        raise NotImplementedError

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for messages."""
        raise NotImplementedError

    def shape(self, key: str) -> tuple[int, ...]:
        """``(H, W, C)`` of the frame ``key``, without decoding it where the store knows it."""
        return self.read(key).shape

    def has_clip(self, clip: str) -> bool:
        raise NotImplementedError


class FolderStore(FrameStore):
    """Frames as image files under ``root/<clip>/``; clip folders are listed once and cached."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"data folder not found: {self.root}")
        self._files: dict[str, dict[str, Path]] = {}

    def clips(self, depth: int = 1) -> list[str]:
        """Clip names: the folders ``depth`` levels below the root that hold images."""
        level = [self.root]
        for _ in range(depth):
            level = [
                d
                for parent in level
                for d in sorted(parent.iterdir(), key=lambda p: natural_key(p.name))
                if d.is_dir()
            ]
        clips = [
            d.relative_to(self.root).as_posix() for d in level if any(is_image(f.name) for f in os.scandir(d))
        ]
        if not clips:
            raise DataError(f"no clip folders with image frames {depth} level(s) below {self.root}")
        return clips

    def _clip_files(self, clip: str) -> dict[str, Path]:
        files = self._files.get(clip)
        if files is None:
            folder = self.root / clip
            if not folder.is_dir():
                raise DataError(f"clip {clip!r} has no folder {folder}")
            paths = list_frames(folder)
            files = {f"{clip}/{p.stem}" if clip else p.stem: p for p in paths}
            if len(files) != len(paths):
                raise DataError(f"two frames share a name with different extensions in {folder}")
            self._files[clip] = files
        return files

    def has_clip(self, clip: str) -> bool:
        return (self.root / clip).is_dir()

    def frames(self, clip: str) -> list[str]:
        return list(self._clip_files(clip))

    def path(self, key: str) -> Path:
        files = self._clip_files(clip_of(key))
        if key not in files:
            raise DataError(
                f"frame {frame_name(key)!r} of clip {clip_of(key)!r} is missing: no "
                f"{self.root / key}.* ({len(files)} frames in {self.root / clip_of(key)})"
            )
        return files[key]

    def read(self, key: str) -> np.ndarray:
        return read_image(self.path(key))

    def shape(self, key: str) -> tuple[int, ...]:
        return image_shape(self.path(key))

    def describe(self, key: str) -> str:
        files = self._files.get(clip_of(key), {})
        return str(files.get(key, self.root / key))


def read_lmdb_meta(root: Path) -> dict[str, tuple[int, int, int]]:
    """``{key: (h, w, c)}`` from ``meta_info.txt`` of a BasicSR LMDB."""
    meta = root / "meta_info.txt"
    if not meta.is_file():
        raise DataError(f"LMDB {root} has no meta_info.txt (BasicSR layout: data.mdb + meta_info.txt)")
    shapes = {}
    for number, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"^(.*?)\s+\((\d+),\s*(\d+),\s*(\d+)\)(?:\s+\d+)?\s*$", line)
        if m is None:
            raise DataError(f"{meta}:{number}: expected '<key>.png (h,w,c) <compression>', got {line!r}")
        name = m.group(1)
        key = name.rsplit(".", 1)[0] if "." in frame_name(name) else name
        shapes[key] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    if not shapes:
        raise DataError(f"{meta} lists no images")
    return shapes


class LmdbStore(FrameStore):
    """Frames in a BasicSR LMDB; the environment is opened per process on first read."""

    def __init__(self, root: str | os.PathLike) -> None:
        configure_process()  # copies inherited by forked loader workers are closed there
        self.root = Path(root)
        if not (self.root / "data.mdb").is_file():
            raise DataError(f"LMDB not found: {self.root} has no data.mdb")
        self.shapes = read_lmdb_meta(self.root)
        self._clips: dict[str, list[str]] = {}
        for key in sorted(self.shapes, key=natural_key):
            self._clips.setdefault(clip_of(key), []).append(key)

    def clips(self, depth: int = 1) -> list[str]:
        return [c for c in self._clips if c.count("/") == depth - 1]

    def has_clip(self, clip: str) -> bool:
        return clip in self._clips

    def frames(self, clip: str) -> list[str]:
        if clip not in self._clips:
            raise DataError(f"clip {clip!r} is not in LMDB {self.root} (no key {clip}/... in meta_info.txt)")
        return list(self._clips[clip])

    def read(self, key: str) -> np.ndarray:
        with lmdb_env(self.root).begin(write=False) as txn:
            value = txn.get(key.encode())
            if value is None:
                raise DataError(f"key {key!r} is not in LMDB {self.root}")
            img = decode_image(bytes(value), f"LMDB {self.root} key {key!r}")
        expected = self.shapes.get(key)
        if expected is not None and img.shape[:2] != expected[:2]:
            raise DataError(
                f"LMDB {self.root} key {key!r} decodes to {img.shape[0]}x{img.shape[1]} but "
                f"meta_info.txt says {expected[0]}x{expected[1]}"
            )
        return img

    def describe(self, key: str) -> str:
        return f"LMDB {self.root} key {key!r}"

    def shape(self, key: str) -> tuple[int, ...]:
        return self.shapes[key] if key in self.shapes else self.read(key).shape


def open_store(root: str | os.PathLike, backend: Backend = "auto") -> FrameStore:
    """A frame store for ``root``.

    ``backend='lmdb'`` reads ``root`` if it is an LMDB, else ``<root>.lmdb`` (what
    ``scripts/make_lmdb.py`` writes by default); ``'auto'`` takes an LMDB when ``root`` holds a
    ``data.mdb`` and a folder otherwise.
    """
    root = Path(root)
    if backend == "folder":
        return FolderStore(root)
    if backend == "lmdb":
        if (root / "data.mdb").is_file() or root.suffix == ".lmdb":
            return LmdbStore(root)
        return LmdbStore(root.with_name(root.name + ".lmdb"))
    if backend == "auto":
        return LmdbStore(root) if (root / "data.mdb").is_file() else FolderStore(root)
    raise DataError(f"backend must be 'auto', 'folder' or 'lmdb', got {backend!r}")


class CombinedStore(FrameStore):
    """Several stores seen as one; a store's numeric clip names may be shifted.

    REDS ships its validation clips as ``val_sharp/000..029``; with ``clip_offset: 240`` they
    join ``train_sharp`` as clips ``240..269``, the numbering of BasicSR's merged layout.
    """

    def __init__(self, stores: list[tuple[FrameStore, int]]) -> None:
        self.stores = stores
        self.root = stores[0][0].root
        self._owner: dict[str, tuple[FrameStore, str]] = {}

    @staticmethod
    def _shift(clip: str, offset: int) -> str:
        if not offset:
            return clip
        if not clip.isdigit():
            raise DataError(f"clip_offset needs numeric clip names, got {clip!r}")
        return f"{int(clip) + offset:0{len(clip)}d}"

    def _index(self, depth: int) -> None:
        for store, offset in self.stores:
            for clip in store.clips(depth):
                self._owner.setdefault(self._shift(clip, offset), (store, clip))

    def clips(self, depth: int = 1) -> list[str]:
        self._index(depth)
        return sorted((c for c in self._owner if c.count("/") == depth - 1), key=natural_key)

    def _resolve(self, clip: str) -> tuple[FrameStore, str]:
        if clip not in self._owner:
            for store, offset in self.stores:
                if not offset and store.has_clip(clip):
                    self._owner[clip] = (store, clip)
                    break
                if offset and clip.isdigit() and int(clip) >= offset:
                    inner = f"{int(clip) - offset:0{len(clip)}d}"
                    if store.has_clip(inner):
                        self._owner[clip] = (store, inner)
                        break
            else:
                roots = ", ".join(str(s.root) for s, _ in self.stores)
                raise DataError(f"clip {clip!r} is in none of {roots}")
        return self._owner[clip]

    def has_clip(self, clip: str) -> bool:
        try:
            self._resolve(clip)
        except DataError:
            return False
        return True

    def _inner_key(self, key: str) -> tuple[FrameStore, str]:
        store, inner = self._resolve(clip_of(key))
        return store, f"{inner}/{frame_name(key)}"

    def frames(self, clip: str) -> list[str]:
        store, inner = self._resolve(clip)
        return [f"{clip}/{frame_name(k)}" for k in store.frames(inner)]

    def read(self, key: str) -> np.ndarray:
        store, inner = self._inner_key(key)
        return store.read(inner)

    def describe(self, key: str) -> str:
        store, inner = self._inner_key(key)
        return store.describe(inner)

    def shape(self, key: str) -> tuple[int, ...]:
        store, inner = self._inner_key(key)
        return store.shape(inner)


def open_stores(roots: str | os.PathLike | list[Any], backend: Backend = "auto") -> FrameStore:
    """:func:`open_store` for one root, or a :class:`CombinedStore` for a list of roots.

    List items are paths or ``{path, clip_offset: 0, optional: false}``; a missing optional root
    is left out.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(roots):
        roots = OmegaConf.to_container(roots, resolve=True)
    if not isinstance(roots, (list, tuple)):
        return open_store(roots, backend)
    stores = []
    for item in roots:
        spec = {"path": item} if isinstance(item, (str, os.PathLike)) else dict(item)
        try:
            stores.append((open_store(spec["path"], backend), int(spec.get("clip_offset", 0))))
        except DataError:
            if not spec.get("optional", False):
                raise
    if not stores:
        raise DataError(f"none of the data folders exist: {roots}")
    return stores[0][0] if len(stores) == 1 and not stores[0][1] else CombinedStore(stores)
