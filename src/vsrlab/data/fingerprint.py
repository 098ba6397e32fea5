"""Fingerprints of evaluation data, and the checks that catch the usual reasons published numbers do
not reproduce: another version of a test set (clips, frame counts, sizes) and LR frames that do not
belong to their GT (shifted by a pixel, another degradation).

Each evaluated clip gets :func:`clip_fingerprint` (frames, sizes, SHA-256 of the LR and GT frames
as read, as uint8 RGB); :func:`dataset_fingerprint` combines them; :func:`check_test_set` compares a
known test set with its published layout (:data:`KNOWN_TEST_SETS`). ``metrics.json`` of every
evaluation records all three.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsrlab.data.degradations import degrade

#: a clip whose LR matches the degraded GT better at a one-pixel shift than in place by this many
#: dB is reported as shifted
SHIFT_MARGIN_DB = 1.0
#: below this PSNR between LR and the degraded GT (in place and at every shift) the LR is reported as
#: not made from this GT with this degradation (MATLAB's and vsrlab's BI agree above 45 dB, BD above 40)
MATCH_PSNR_DB = 30.0


@dataclass(frozen=True)
class KnownTestSet:
    """The published layout of a test set: clip names (or only their number), LR frames per clip
    (one number for all, or per clip) and GT frame sizes ``(width, height)``."""

    title: str
    clips: tuple[str, ...] | int
    frames: int | Mapping[str, int]
    gt_size: tuple[int, int] | Mapping[str, tuple[int, int]] | None
    note: str = ""

    def expected_frames(self, clip: str) -> int | None:
        return self.frames.get(clip) if isinstance(self.frames, Mapping) else self.frames

    def expected_size(self, clip: str) -> tuple[int, int] | None:
        return self.gt_size.get(clip) if isinstance(self.gt_size, Mapping) else self.gt_size


#: keyed by the ``name`` of the evaluation dataset in ``conf/data`` (``data.val.name``)
KNOWN_TEST_SETS: dict[str, KnownTestSet] = {
    "vid4": KnownTestSet(
        "Vid4",
        ("calendar", "city", "foliage", "walk"),
        {"calendar": 41, "city": 34, "foliage": 49, "walk": 47},
        {"calendar": (720, 576), "city": (704, 576), "foliage": (720, 480), "walk": (720, 480)},
    ),
    "reds/val": KnownTestSet("REDS4", ("000", "011", "015", "020"), 100, (1280, 720)),
    "reds_official/val": KnownTestSet("REDSofficial4", ("240", "241", "246", "257"), 100, (1280, 720)),
    "vimeo90k/test": KnownTestSet("Vimeo-90K-T", 7824, 7, (448, 256), "the septuplets of sep_testlist.txt"),
    "udm10": KnownTestSet(
        "UDM10",
        (
            "archpeople",
            "archwall",
            "auditorium",
            "band",
            "caffe",
            "camera",
            "clap",
            "lake",
            "photography",
            "polyflow",
        ),
        32,
        None,
        "frame sizes are not checked (no published reference in vsrlab's facts)",
    ),
}


def frames_sha256(frames: np.ndarray) -> str:
    """SHA-256 of ``(T, H, W, C)`` uint8 frames: their shape, then their bytes (RGB, row-major)."""
    frames = np.ascontiguousarray(frames)
    digest = hashlib.sha256(repr((frames.dtype.str, frames.shape)).encode())
    digest.update(frames.tobytes())
    return digest.hexdigest()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB, 100 for identical arrays (JSON has no infinity)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else min(100.0, float(10.0 * np.log10(255.0**2 / mse)))


def lr_alignment(
    lq: np.ndarray, gt: np.ndarray, scale: int, degradation: str, border: int = 2
) -> dict[str, Any]:
    """How an LR frame ``(h, w, C)`` relates to its GT ``(s*h, s*w, C)`` degraded by ``degradation``:
    PSNR in place and at the best whole-pixel shift ``(dx, dy)`` in {-1, 0, 1}^2 (the LR content at
    ``(x, y)`` matches the degraded GT at ``(x + dx, y + dy)``), on the frame without ``border`` pixels."""
    reference = degrade(gt[None], scale, degradation)[0]
    h, w = lq.shape[:2]
    inner = lq[border : h - border, border : w - border]
    scores = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            scores[(dx, dy)] = _psnr(
                inner, reference[border + dy : h - border + dy, border + dx : w - border + dx]
            )
    best = max(scores, key=lambda k: (scores[k], k == (0, 0)))
    return {"psnr": round(scores[(0, 0)], 3), "best_shift": list(best), "best_psnr": round(scores[best], 3)}


def alignment_problem(clip: str, check: Mapping[str, Any], degradation: str) -> str | None:
    """A sentence naming ``clip`` when :func:`lr_alignment` found its LR shifted or not made from
    its GT by ``degradation``; None when it matches."""
    if check["best_shift"] != [0, 0] and check["best_psnr"] - check["psnr"] > SHIFT_MARGIN_DB:
        dx, dy = check["best_shift"]
        return (
            f"clip {clip}: the LR frames are shifted by ({dx:+d}, {dy:+d}) px against the "
            f"{degradation}-degraded "
            f"GT ({check['best_psnr']:.1f} dB shifted vs {check['psnr']:.1f} dB in place)"
        )
    if check["best_psnr"] < MATCH_PSNR_DB:
        return (
            f"clip {clip}: the LR frames do not look like {degradation} of the GT ({check['psnr']:.1f} dB; "
            f"another degradation, scale or version of the data?)"
        )
    return None


def clip_fingerprint(
    lq: np.ndarray, gt: np.ndarray, *, scale: int, degradation: str | None = None, lq_from_files: bool = True
) -> dict[str, Any]:
    """What an evaluation read of one clip: LR frames ``(T, h, w, C)`` and GT frames, uint8.

    Returns ``{frames, gt_frames, lq_size, gt_size, lq_sha256, gt_sha256}`` (sizes ``[w, h]``) and,
    when the LR came from files and ``degradation`` is known, ``lr_check`` (:func:`lr_alignment` of
    the middle frame of the clip; only when GT and LR frames correspond one to one).
    """
    out: dict[str, Any] = {
        "frames": int(lq.shape[0]),
        "gt_frames": int(gt.shape[0]),
        "lq_size": [int(lq.shape[2]), int(lq.shape[1])],
        "gt_size": [int(gt.shape[2]), int(gt.shape[1])],
        "lq_sha256": frames_sha256(lq),
        "gt_sha256": frames_sha256(gt),
    }
    if lq_from_files and degradation and lq.shape[0] == gt.shape[0]:
        mid = lq.shape[0] // 2
        out["lr_check"] = lr_alignment(lq[mid], gt[mid], scale, degradation)
    return out


def dataset_fingerprint(clips: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One fingerprint of a whole evaluation set from its clips' (in clip-name order): number of
    clips and frames, and SHA-256 over the clips' names and LR (GT) hashes."""
    names = sorted(clips)
    lq = hashlib.sha256("".join(f"{n}:{clips[n]['lq_sha256']}\n" for n in names).encode()).hexdigest()
    gt = hashlib.sha256("".join(f"{n}:{clips[n]['gt_sha256']}\n" for n in names).encode()).hexdigest()
    return {
        "clips": len(names),
        "frames": sum(int(clips[n]["frames"]) for n in names),
        "lq_sha256": lq,
        "gt_sha256": gt,
    }


def check_test_set(name: str | None, clips: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Differences between the clips read (``{clip: fingerprint}``) and the published layout of the
    known test set ``name`` (:data:`KNOWN_TEST_SETS`), one sentence each naming the clip; [] for a
    matching or an unknown set."""
    known = KNOWN_TEST_SETS.get(str(name))
    if known is None:
        return []
    problems = []
    if isinstance(known.clips, int):
        if len(clips) != known.clips:
            problems.append(
                f"{known.title} has {known.clips} clips ({known.note}); {len(clips)} were evaluated"
            )
    else:
        missing = [c for c in known.clips if c not in clips]
        extra = sorted(c for c in clips if c not in known.clips)
        if missing:
            problems.append(f"{known.title}: clips {missing} are missing")
        if extra:
            problems.append(f"{known.title}: clips {extra} are not part of it")
    for clip in sorted(clips):
        fp = clips[clip]
        frames, size = known.expected_frames(clip), known.expected_size(clip)
        if frames is not None and int(fp["frames"]) != frames:
            problems.append(
                f"{known.title} clip {clip}: {fp['frames']} LR frames, the published set has {frames}"
            )
        if size is not None and tuple(fp["gt_size"]) != tuple(size):
            problems.append(
                f"{known.title} clip {clip}: GT frames are {fp['gt_size'][0]}x{fp['gt_size'][1]}, "
                f"the published set's are {size[0]}x{size[1]}"
            )
    return problems


def data_report(clips: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What ``metrics.json`` records about the data of an evaluation, from the clips' fingerprints
    (``{clip: {dataset, degradation, **clip_fingerprint}}``): the dataset's name, its fingerprint,
    every clip's, and ``problems``: the differences from a known test set's published layout and
    the clips whose LR does not belong to their GT."""
    if not clips:
        return {}
    first = next(iter(clips.values()))
    dataset, degradation = first.get("dataset"), first.get("degradation")
    problems = check_test_set(dataset, clips)
    for clip in sorted(clips):
        check = clips[clip].get("lr_check")
        problem = alignment_problem(clip, check, degradation) if check else None
        if problem:
            problems.append(problem)
    known = KNOWN_TEST_SETS.get(str(dataset))
    return {
        "dataset": dataset,
        "test_set": known.title if known else None,
        "fingerprint": dataset_fingerprint(clips),
        "clips": {
            c: {k: v for k, v in clips[c].items() if k not in ("dataset", "degradation")}
            for c in sorted(clips)
        },
        "problems": problems,
    }
