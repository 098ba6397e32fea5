"""Dataset preparation: low-resolution frames (BI / BD) and BasicSR LMDBs from frame folders.

Both tools walk a frame folder of any depth (REDS ``000/00000000.png``, Vimeo-90K
``sequences/00001/0001/im1.png``, Vid4 ``calendar/Frame 001.png``) and name every image by its
*key*, the path relative to the root without the extension, as :mod:`vsrlab.data.stores` does.

- :func:`make_lr_folder` writes the BI (MATLAB bicubic) or BD (Gaussian blur + subsample) LR
  frame of every GT frame as ``<dst>/<key>.png``, mod-cropping GT frames whose size is not a
  multiple of the scale first (top-left part kept, as MATLAB ``modcrop``).
- :func:`make_lmdb` packs frames into a BasicSR LMDB: ``data.mdb`` with PNG-encoded values
  under the keys, and ``meta_info.txt`` with one ``<key>.png (h,w,c) <compress_level>`` line per
  image.

Both are resumable: every output PNG is written atomically and skipped when present; the LMDB
commits every ``batch`` images, skips keys it already holds and writes ``meta_info.txt`` only
once every image is in (an LMDB without it is unfinished).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import lmdb
import numpy as np

from vsrlab.data.clip_lists import frame_name
from vsrlab.data.degradations import degrade
from vsrlab.data.errors import DataError
from vsrlab.data.image_io import PNG_SIGNATURE, is_image, png_shape, read_image
from vsrlab.utils.io import atomic_write
from vsrlab.utils.text import natural_key

_PNG_END = b"IEND\xaeB`\x82"


def key_order(key: str) -> list[list[Any]]:
    """Natural order of frame keys, folder level by folder level."""
    return [natural_key(part) for part in key.split("/")]


def _walk_images(root: Path, exclude: Path | None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        ]
        for name in filenames:
            if is_image(name):
                yield here / name


def collect_frames(
    src: str | os.PathLike,
    clips: Iterable[str] | None = None,
    frames: Iterable[str] | None = None,
    exclude: str | os.PathLike | None = None,
) -> list[tuple[str, Path]]:
    """``(key, path)`` of every image below ``src`` (any depth), in natural key order.

    Args:
        src: root of the frame folder.
        clips: keep only frames inside these folders (relative to ``src``, e.g. ``00001/0001``;
            a folder also selects everything below it).
        frames: keep only frames with these names (``im4``; an extension is ignored).
        exclude: a folder below ``src`` not to walk (an output folder inside the input).

    Raises:
        DataError: ``src`` is missing, a listed clip has no frame, two files give the same key
            (``a.png`` and ``a.jpg``) or nothing is selected.
    """
    root = Path(src)
    if not root.is_dir():
        raise DataError(f"frame folder not found: {root}")
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: dict[str, Path] = {}
    for path in _walk_images(root, excluded):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise DataError(f"two frames share the key {key!r}: {found[key]} and {path}")
        found[key] = path
    if not found:
        raise DataError(f"no image frames below {root}")
    keys = list(found)
    if clips is not None:
        wanted = {c.strip().strip("/") for c in clips}
        ancestors = {k: {"/".join(k.split("/")[:i]) for i in range(1, k.count("/") + 1)} for k in keys}
        keys = [k for k in keys if ancestors[k] & wanted]
        present = set().union(*(ancestors[k] for k in keys)) if keys else set()
        missing = sorted(wanted - present, key=key_order)
        if missing:
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise DataError(
                f"{len(missing)} listed clip(s) have no frames below {root}: {', '.join(missing[:5])}{more}"
            )
    if frames is not None:
        names = {Path(f).stem if is_image(f) else f for f in frames}
        keys = [k for k in keys if frame_name(k) in names]
        if not keys:
            raise DataError(f"no frame named {', '.join(sorted(names))} below {root}")
    return [(k, found[k]) for k in sorted(keys, key=key_order)]


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """The top-left ``H - H % scale`` x ``W - W % scale`` part of ``img`` (MATLAB ``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def encode_png(img: np.ndarray, compress_level: int = 1, source: str = "") -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 RGB image (stored BGR, as cv2 writes files)."""
    bgr = np.ascontiguousarray(img[..., ::-1])
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise DataError(f"cannot encode {source or 'image'} as PNG")
    return buf.tobytes()


def png_complete(path: Path) -> bool:
    """Whether ``path`` is a PNG file that ends with its IEND chunk."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return False
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:
        return False


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, disable=not enabled)


def _lr_one(
    item: tuple[str, Path], dst: Path, scale: int, degradation: str, overwrite: bool
) -> tuple[str, bool]:
    """Write the LR frame of one GT frame; returns (``'written'`` or ``'skipped'``, cropped)."""
    key, path = item
    out = dst / f"{key}.png"
    if not overwrite and png_complete(out):
        return "skipped", False
    gt = read_image(path)
    cropped = modcrop(gt, scale)
    lr = degrade(np.ascontiguousarray(cropped), scale, degradation)
    data = encode_png(lr, 3, str(out))
    with atomic_write(out) as f:
        f.write(data)
    return "written", cropped.shape != gt.shape


def make_lr_folder(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    scale: int = 4,
    degradation: str = "BI",
    clips: Iterable[str] | None = None,
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, int]:
    """Write the BI or BD low-resolution frame of every frame below ``src`` to ``dst``.

    The tree is mirrored: ``src/<key>.<ext>`` gives ``dst/<key>.png``. GT frames whose height or
    width is not a multiple of ``scale`` are mod-cropped (top-left part kept) before degrading.
    Complete existing outputs are skipped unless ``overwrite``; each output is written
    atomically, so an interrupted run is resumed by running it again.

    Args:
        src: GT frame folder (any depth).
        dst: output folder; must not be ``src`` (it may lie inside it and is then not read).
        scale: integer downscaling factor.
        degradation: ``'BI'`` (MATLAB bicubic) or ``'BD'`` (Gaussian blur sigma 0.4*scale + subsample).
        clips: only the frames inside these folders of ``src`` (see :func:`collect_frames`).
        workers: processes to use; 0 degrades in this process.
        overwrite: rewrite existing outputs.
        progress: show a tqdm progress bar.

    Returns:
        ``{'total', 'written', 'skipped', 'cropped'}``; ``cropped`` counts the written frames
        whose GT was mod-cropped (skipped frames are not read).

    Raises:
        DataError: bad input (an unreadable frame is named), ``dst`` equal to ``src``.
        ValueError: bad ``scale`` or ``degradation``.
    """
    degradation = degradation.upper()
    if degradation not in ("BI", "BD"):
        raise ValueError(f"degradation must be 'BI' or 'BD', got {degradation!r}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise DataError(f"output folder {dst} is the input folder; the LR frames would replace the GT frames")
    items = collect_frames(src, clips, exclude=dst)
    job = partial(_lr_one, dst=dst, scale=int(scale), degradation=degradation, overwrite=overwrite)
    counts = {"total": len(items), "written": 0, "skipped": 0, "cropped": 0}
    with _progress(len(items), f"{degradation}x{scale} {src.name}", progress) as bar:
        if workers > 0:
            # spawned, not forked: a fork of a process whose OpenCV thread pool exists can hang in cv2
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = pool.map(job, items, chunksize=max(1, min(64, len(items) // (workers * 8))))
                try:
                    for status, cropped in results:
                        counts[status] += 1
                        counts["cropped"] += cropped
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        else:
            for item in items:
                status, cropped = job(item)
                counts[status] += 1
                counts["cropped"] += cropped
                bar.update()
    return counts


def _estimate_map_size(items: list[tuple[str, Path]], compress_level: int) -> int:
    first = encode_png(read_image(items[0][1]), compress_level, str(items[0][1]))
    return max(len(first) * len(items) * 10, 64 * 2**20)


def make_lmdb(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    clips: Iterable[str] | None = None,
    frames: Iterable[str] | None = None,
    compress_level: int = 1,
    batch: int = 1000,
    map_size: int | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Pack the frames below ``src`` into a BasicSR LMDB at ``dst`` (conventionally ``<name>.lmdb``).

    Values are the frames re-encoded as PNG (``cv2.imencode``, BGR; 16-bit and grey frames become
    8-bit colour, as :func:`vsrlab.data.image_io.read_image` reads them) under their keys
    (``000/00000000``); ``meta_info.txt`` lists ``<key>.png (h,w,c) <compress_level>`` per image
    in natural key order. Resumable: keys already in ``dst`` are kept, not re-encoded, and
    writes are committed every ``batch`` images; ``meta_info.txt`` is removed before the first
    write and written (atomically) only when every selected image is in.

    Args:
        src: frame folder (GT or LR, any depth).
        dst: LMDB folder to create or complete.
        clips: only the frames inside these folders (e.g. the lines of Vimeo's ``sep_trainlist.txt``).
        frames: only frames with these names (``['im4']``: BasicSR's Vimeo-90K GT LMDB).
        compress_level: PNG compression level 0-9 (BasicSR uses 1).
        batch: images per write transaction.
        map_size: LMDB map size in bytes; default the first image's encoded size x count x 10,
            doubled whenever the map fills up.
        progress: show a tqdm progress bar.

    Returns:
        ``{'total', 'written', 'skipped', 'extra', 'map_size'}``; ``extra`` counts keys in
        ``dst`` that are not selected (left in the database, not listed in ``meta_info.txt``).
    """
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be in 0..9, got {compress_level}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise DataError(f"LMDB folder {dst} is the input folder")
    items = collect_frames(src, clips, frames, exclude=dst)
    if map_size is None:
        map_size = _estimate_map_size(items, compress_level)
        existing = dst / "data.mdb"
        if existing.is_file():
            map_size += existing.stat().st_size
    dst.mkdir(parents=True, exist_ok=True)
    meta = dst / "meta_info.txt"
    shapes: dict[str, tuple[int, int, int]] = {}
    counts = {"total": len(items), "written": 0, "skipped": 0, "extra": 0}
    env = lmdb.open(str(dst), map_size=map_size, subdir=True, readahead=False, meminit=False)
    try:
        with _progress(len(items), f"LMDB {dst.name}", progress) as bar:
            for start in range(0, len(items), batch):
                chunk = items[start : start + batch]
                written = _put_batch(env, chunk, shapes, compress_level, meta)
                counts["written"] += written
                counts["skipped"] += len(chunk) - written
                bar.update(len(chunk))
        with env.begin() as txn:
            counts["extra"] = txn.stat()["entries"] - len(items)
        counts["map_size"] = env.info()["map_size"]
        env.sync()
    finally:
        env.close()
    with atomic_write(meta, "w") as f:
        f.writelines(f"{key}.png ({h},{w},{c}) {compress_level}\n" for key, (h, w, c) in shapes.items())
    return counts


def _put_batch(
    env: Any,
    chunk: list[tuple[str, Path]],
    shapes: dict[str, tuple[int, int, int]],
    compress_level: int,
    meta: Path,
) -> int:
    """Store the frames of ``chunk`` missing from ``env`` in one transaction, growing the map when full.

    Records every frame's ``(h, w, c)`` in ``shapes``, removes ``meta`` before the first write
    and returns how many frames were written.
    """
    while True:
        txn = env.begin(write=True)
        written = 0
        try:
            for key, path in chunk:
                value = txn.get(key.encode())
                if value is None:
                    meta.unlink(missing_ok=True)
                    img = read_image(path)
                    txn.put(key.encode(), encode_png(img, compress_level, str(path)))
                    shape = img.shape
                    written += 1
                else:
                    shape = png_shape(bytes(value)) or _decoded_shape(bytes(value), Path(env.path()), key)
                shapes[key] = (int(shape[0]), int(shape[1]), int(shape[2]))
            txn.commit()
            return written
        except lmdb.MapFullError:
            txn.abort()
            env.set_mapsize(env.info()["map_size"] * 2)
        except BaseException:
            txn.abort()
            raise


def _decoded_shape(value: bytes, dst: Path, key: str) -> tuple[int, int, int]:
    img = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"LMDB {dst} key {key!r} holds no decodable image; delete {dst} and rebuild")
    return img.shape[0], img.shape[1], img.shape[2]


__all__ = [
    "collect_frames",
    "encode_png",
    "key_order",
    "make_lmdb",
    "make_lr_folder",
    "modcrop",
    "png_complete",
    "png_shape",
]
