"""Broken dataset folders: each gets an error naming the file, folder or key; skip_bad skips and counts."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import lmdb
import pytest
from test_datasets import compose, frames, vid4_layout, write_clip, write_pair

from vsrlab.apps.evaluate import evaluate
from vsrlab.data import DataError, VideoDataset
from vsrlab.data.image_io import decode_image, list_frames
from vsrlab.data.prepare import make_lmdb
from vsrlab.data.stores import LmdbStore, open_store


def pair_layout(root: Path, clips: tuple[str, ...] = ("a", "b"), t: int = 4) -> None:
    for i, clip in enumerate(clips):
        write_pair(root / "GT", root / "LR", clip, frames(i, t, 32, 32), [f"{k:04d}" for k in range(t)])


def dataset(root: Path, **kwargs) -> VideoDataset:
    return VideoDataset(gt_root=str(root / "GT"), lq_root=str(root / "LR"), sampling="clip", **kwargs)


def test_missing_lr_frame_names_the_file(tmp_path):
    pair_layout(tmp_path)
    (tmp_path / "GT/b/0002.png").unlink()
    with pytest.raises(DataError, match=r"frame '0002' of clip 'b' is missing: no .*GT/b/0002\.\*"):
        dataset(tmp_path)[1]


def test_gap_in_frame_numbering_names_the_folder(tmp_path):
    pair_layout(tmp_path)
    (tmp_path / "LR/a/0002.png").unlink()
    with pytest.raises(DataError, match=r"frames jump from '0001' to '0003' in .*LR/a: frame 2 missing"):
        dataset(tmp_path)[0]
    assert dataset(tmp_path, check_numbering=False, clips=["b"])[0]["lq"].shape[0] == 4


def test_frame_of_another_size_names_both_files(tmp_path):
    pair_layout(tmp_path)
    write_clip(tmp_path / "GT/a", frames(5, 1, 36, 32), ["0003"])
    with pytest.raises(
        DataError, match=r"GT/a/0003\.png is 32x36 but .*GT/a/0000\.png of the same clip is 32x32"
    ):
        dataset(tmp_path)[0]


def test_lr_gt_scale_mismatch_names_both_files_when_the_dataset_is_built(tmp_path):
    # a pass over the clip list (PNG headers, the middle frame of each clip), not the first batch
    pair_layout(tmp_path)
    with pytest.raises(
        DataError, match=r"LR frame .*LR/a/0001\.png is 8x8 and GT frame .*GT/a/0001\.png is 32x32: not x2"
    ):
        dataset(tmp_path, scale=2)
    write_clip(tmp_path / "LR/b", frames(1, 1, 10, 8), ["0001"])  # one clip of the right scale, one not
    with pytest.raises(
        DataError, match=r"LR frame .*LR/b/0001\.png is 8x10 and GT frame .*GT/b/0001\.png is 32x32: not x4"
    ):
        dataset(tmp_path)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda b: b[: len(b) // 2], "truncated PNG"),
        (lambda b: b"\x89PNG" + bytes(60) + b"IEND\xaeB`\x82", "cannot decode image"),
        (lambda b: b"", "empty image file"),
    ],
)
def test_unreadable_or_truncated_frame_names_the_file(tmp_path, damage, message):
    pair_layout(tmp_path)
    path = tmp_path / "LR/b/0001.png"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=rf"{message}.*LR/b/0001\.png"):
        dataset(tmp_path)[1]


def test_truncated_jpeg_is_refused():
    ok, buf = cv2.imencode(".jpg", frames(0, 1, 32, 32)[0])
    assert ok and decode_image(buf.tobytes(), "x.jpg").shape == (32, 32, 3)
    with pytest.raises(DataError, match="truncated JPEG.*x.jpg"):
        decode_image(buf.tobytes()[:-40], "x.jpg")


def test_empty_folder_and_missing_root(tmp_path):
    pair_layout(tmp_path)
    (tmp_path / "GT/c").mkdir()
    (tmp_path / "LR/c").mkdir()
    with pytest.raises(DataError, match=r"no image frames .* in .*LR/c"):
        dataset(tmp_path, clips=["c"])[0]
    with pytest.raises(DataError, match=r"no image frames .* in .*empty"):
        (tmp_path / "empty").mkdir()
        list_frames(tmp_path / "empty")
    with pytest.raises(DataError, match=r"data folder not found: .*nowhere"):
        VideoDataset(gt_root=str(tmp_path / "nowhere"))


def test_clip_listed_in_meta_file_but_absent(tmp_path):
    pair_layout(tmp_path)
    meta = tmp_path / "meta_info.txt"
    meta.write_text("a 4 (32,32,3)\nzzz 4 (32,32,3)\n")
    with pytest.raises(DataError, match=rf"clip 'zzz' listed in {meta} is absent: no .*LR/zzz"):
        dataset(tmp_path, meta_file=str(meta))
    meta.write_text("a 5 (32,32,3)\n")
    with pytest.raises(DataError, match=r"clip 'a': the meta file says 5 frames, .*LR/a has 4"):
        dataset(tmp_path, meta_file=str(meta))[0]


def test_corrupt_or_missing_lmdb_key_names_the_key(tmp_path):
    pair_layout(tmp_path)
    make_lmdb(tmp_path / "GT", tmp_path / "GT.lmdb")
    make_lmdb(tmp_path / "LR", tmp_path / "LR.lmdb")
    store = open_store(tmp_path / "GT", "lmdb")
    assert isinstance(store, LmdbStore) and store.frames("a")[0] == "a/0000"
    env = lmdb.open(str(tmp_path / "GT.lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(b"b/0002", b"\x89PNG garbage")
        txn.delete(b"a/0001")
    env.close()
    ds = VideoDataset(
        gt_root=str(tmp_path / "GT"), lq_root=str(tmp_path / "LR"), backend="lmdb", sampling="clip"
    )
    with pytest.raises(DataError, match=r"key 'a/0001' is not in LMDB .*GT\.lmdb"):
        ds[0]
    with pytest.raises(DataError, match=r"LMDB .*GT\.lmdb key 'b/0002'"):
        ds[1]
    (tmp_path / "GT.lmdb/meta_info.txt").write_text("a/0000.png 32x32\n")
    with pytest.raises(DataError, match=r"meta_info\.txt:1: expected"):
        LmdbStore(tmp_path / "GT.lmdb")


def test_skip_bad_skips_and_counts_clips(tmp_path, caplog):
    pair_layout(tmp_path, clips=("a", "b", "c"))
    path = tmp_path / "LR/b/0001.png"
    path.write_bytes(path.read_bytes()[:100])
    ds = dataset(tmp_path, skip_bad=True)
    with caplog.at_level(logging.WARNING):
        assert ds[1] is None and ds[0] is not None and ds[2] is not None
    assert list(ds.bad_clips) == ["b"] and "skipping bad clip 'b' (1 bad so far)" in caplog.text
    train = VideoDataset(
        gt_root=str(tmp_path / "GT"),
        lq_root=str(tmp_path / "LR"),
        sampling="window",
        num_frames=3,
        skip_bad=True,
    )
    keys = [train[i]["key"] for i in range(len(train))]
    assert not any(k.startswith("b/") for k in keys) and len(keys) == 12  # b's windows replaced by others
    assert list(train.bad_clips) == ["b"]


def test_eval_with_skip_bad_reports_skipped_clips(tmp_path):
    vid4_layout(tmp_path / "Vid4", names=3)
    path = tmp_path / "Vid4/GT/city/Frame 2.png"
    path.write_bytes(path.read_bytes()[:50])
    common = ["data=vid4", f"data.root={tmp_path / 'Vid4'}", "arch=bicubic"]
    with pytest.raises(DataError, match=r"truncated PNG.*city/Frame 2\.png"):
        evaluate(compose("eval", tmp_path, common, "a"))
    results = evaluate(compose("eval", tmp_path, [*common, "data.skip_bad=true"], "b"))
    assert list(results["clips"]) == ["calendar"] and results["skipped_clips"] == 1


def test_config_errors_name_the_key(tmp_path, make_cfg):
    from hydra.utils import instantiate

    with pytest.raises(Exception, match=r"unknown evaluation protocol keys \['frame'\]"):
        instantiate(make_cfg(overrides=["+data.protocol.frame=center"]).model)
    with pytest.raises(ValueError, match="gt_size 30 is not divisible by the scale 4"):
        VideoDataset(gt_root=str(tmp_path), gt_size=30)
