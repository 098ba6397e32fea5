"""Evaluations that cannot be silently wrong: every evaluation records a fingerprint of the data it
read, known test sets are checked against their published layout, LR frames shifted against their
GT or made by another degradation are reported, naming the clip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_datasets import LOADER, frames, write_clip

from conftest import compose_config
from vsrlab.apps.evaluate import evaluate
from vsrlab.data.degradations import degrade
from vsrlab.data.fingerprint import (
    KNOWN_TEST_SETS,
    alignment_problem,
    check_test_set,
    clip_fingerprint,
    dataset_fingerprint,
    frames_sha256,
    lr_alignment,
)


@pytest.mark.parametrize("dx,dy", [(1, 0), (0, -1), (-1, 1)])
def test_a_lr_frame_shifted_by_one_pixel_is_found(dx, dy):
    gt = frames(1, 1, 96, 128)[0]
    lq = degrade(gt[None], 4, "BI")[0]
    assert lr_alignment(lq, gt, 4, "BI") == {"psnr": 100.0, "best_shift": [0, 0], "best_psnr": 100.0}
    check = lr_alignment(np.roll(lq, (dy, dx), axis=(0, 1)), gt, 4, "BI")
    assert check["best_shift"] == [-dx, -dy] and check["best_psnr"] == 100.0 and check["psnr"] < 20
    assert alignment_problem("walk", check, "BI").startswith(
        f"clip walk: the LR frames are shifted by ({-dx:+d}, {-dy:+d}) px"
    )


def test_lr_made_by_another_degradation_is_reported():
    gt = frames(2, 1, 96, 128)[0]
    check = lr_alignment(degrade(gt[None], 4, "BD")[0], gt, 4, "BI")
    assert check["best_psnr"] < 30
    assert "do not look like BI of the GT" in alignment_problem("city", check, "BI")
    assert alignment_problem("city", lr_alignment(degrade(gt[None], 4, "BD")[0], gt, 4, "BD"), "BD") is None


def test_fingerprints_hash_what_was_read():
    gt = frames(3, 4, 32, 40)
    lq = degrade(gt, 4, "BI")
    fp = clip_fingerprint(lq, gt, scale=4, degradation="BI")
    assert fp["frames"] == 4 and fp["lq_size"] == [10, 8] and fp["gt_size"] == [40, 32]
    assert fp["lq_sha256"] == frames_sha256(lq) != frames_sha256(lq[::-1])
    assert fp["lr_check"]["best_shift"] == [0, 0]
    assert "lr_check" not in clip_fingerprint(lq, gt, scale=4, lq_from_files=False)
    changed = gt.copy()
    changed[2, 5, 5, 0] ^= 1  # one bit of one pixel
    whole = dataset_fingerprint({"a": fp, "b": fp})
    assert whole["clips"] == 2 and whole["frames"] == 8
    assert (
        dataset_fingerprint({"a": fp, "b": clip_fingerprint(lq, changed, scale=4)})["gt_sha256"]
        != whole["gt_sha256"]
    )
    assert (
        dataset_fingerprint({"a": fp, "b": clip_fingerprint(lq, changed, scale=4)})["lq_sha256"]
        == whole["lq_sha256"]
    )


def test_known_test_sets_are_checked_clip_by_clip():
    vid4 = KNOWN_TEST_SETS["vid4"]
    good = {
        c: {"frames": vid4.expected_frames(c), "gt_size": list(vid4.expected_size(c))} for c in vid4.clips
    }
    assert check_test_set("vid4", good) == []
    bad = {
        **good,
        "city": {"frames": 33, "gt_size": [704, 576]},
        "walk": {"frames": 47, "gt_size": [720, 476]},
    }
    del bad["foliage"]
    assert check_test_set("vid4", bad) == [
        "Vid4: clips ['foliage'] are missing",
        "Vid4 clip city: 33 LR frames, the published set has 34",
        "Vid4 clip walk: GT frames are 720x476, the published set's are 720x480",
    ]
    assert check_test_set("vimeo90k/test", {"00001/0001": {"frames": 7, "gt_size": [448, 256]}}) == [
        "Vimeo-90K-T has 7824 clips (the septuplets of sep_testlist.txt); 1 were evaluated"
    ]
    assert check_test_set("my_own_set", bad) == []


def test_eval_records_the_fingerprint_and_reports_a_shifted_clip_and_a_wrong_test_set(tmp_path, caplog):
    """A Vid4-named layout with LR folders: calendar's LR is shifted by one pixel, and neither clip
    has Vid4's frame count or size: metrics.json names each problem and the clip."""
    root = tmp_path / "Vid4"
    written = {}
    for i, clip in enumerate(["calendar", "city"]):
        gt = frames(30 + i, 5, 48, 64)
        lq = degrade(gt, 4, "BI")
        if clip == "calendar":
            lq = np.roll(lq, 1, axis=2)  # content moved one LR pixel to the right
        names = [f"{t:08d}" for t in range(5)]
        write_clip(root / "GT" / clip, gt, names)
        write_clip(root / "BIx4" / clip, lq, names)
        written[clip] = (lq, gt)
    cfg = compose_config(
        "eval",
        [*LOADER, "data=vid4", f"data.root={root}", "trainer.enable_progress_bar=false"],
        tmp_path / "run",
    )
    results = evaluate(cfg)
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert data == results["data"]
    assert data["dataset"] == "vid4" and data["test_set"] == "Vid4"
    for clip, (lq, gt) in written.items():
        assert data["clips"][clip]["lq_sha256"] == frames_sha256(lq) and data["clips"][clip][
            "gt_sha256"
        ] == frames_sha256(gt)
    assert data["fingerprint"] == dataset_fingerprint(data["clips"])
    problems = data["problems"]
    assert "Vid4: clips ['foliage', 'walk'] are missing" in problems
    assert "Vid4 clip calendar: 5 LR frames, the published set has 41" in problems
    assert "Vid4 clip city: GT frames are 64x48, the published set's are 704x576" in problems
    shifted = [p for p in problems if "shifted" in p]
    assert len(shifted) == 1 and shifted[0].startswith(
        "clip calendar: the LR frames are shifted by (-1, +0) px"
    )
    assert "clip calendar: the LR frames are shifted" in caplog.text  # also warned while evaluating
