"""LR / GT size checks: each pair of frames must differ by exactly the scale, checked over the whole clip
list when a dataset is built (from file headers where the format has them), so that bad data is refused
before training starts, not at its first batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vsrlab.data.errors import DataError
from vsrlab.data.stores import FrameStore


def check_scale(
    lq: FrameStore,
    lq_key: str,
    lq_shape: Sequence[int],
    gt: FrameStore,
    gt_key: str,
    gt_shape: Sequence[int],
    scale: int,
) -> None:
    """DataError naming both frames unless ``gt_shape`` ``(H, W, ...)`` is ``scale`` x ``lq_shape``."""
    h, w = lq_shape[:2]
    if tuple(gt_shape[:2]) != (h * scale, w * scale):
        raise DataError(
            f"LR frame {lq.describe(lq_key)} is {w}x{h} and GT frame {gt.describe(gt_key)} is "
            f"{gt_shape[1]}x{gt_shape[0]}: not x{scale}"
        )


def check_scales(lq: FrameStore, gt: FrameStore, clips: Mapping[str, Sequence[str]], scale: int) -> None:
    """:func:`check_scale` on the middle frame of every clip (``{clip: frame keys}``; the middle frame is
    in the GT of every layout, also Vimeo-90K's LMDB of centre frames)."""
    for keys in clips.values():
        key = keys[(len(keys) - 1) // 2]
        check_scale(lq, key, lq.shape(key), gt, key, gt.shape(key), scale)
