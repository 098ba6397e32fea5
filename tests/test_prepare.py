"""Dataset preparation tools: LR frame folders (BI / BD) and BasicSR LMDBs, library and CLIs."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

import vsrlab.data.prepare as prepare
from vsrlab.data.clip_lists import read_clip_list
from vsrlab.data.degradations import degrade
from vsrlab.data.errors import DataError
from vsrlab.data.image_io import read_image
from vsrlab.data.prepare import collect_frames, make_lmdb, make_lr_folder
from vsrlab.data.stores import LmdbStore

ROOT = Path(__file__).resolve().parents[1]
VID4_NAMES = ["Frame 1", "Frame 2", "Frame 10"]
META_LINE = re.compile(r"^(\S.*)\.png \((\d+),(\d+),(\d+)\) (\d)$")


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img[..., ::-1])


@pytest.fixture
def vid4_like(tmp_path: Path) -> Path:
    """2 clips x 3 frames of 32x48 RGB noise named ``Frame 1/2/10.png``."""
    rng = np.random.default_rng(0)
    root = tmp_path / "gt"
    for clip in ("calendar", "city"):
        for name in VID4_NAMES:
            _write(root / clip / f"{name}.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    return root


@pytest.fixture
def vimeo_like(tmp_path: Path) -> Path:
    """Vimeo-90K layout ``<seq>/<clip>/im1..im7.png``: 3 clips of 16x24 noise."""
    rng = np.random.default_rng(1)
    root = tmp_path / "sequences"
    for clip in ("00001/0001", "00001/0002", "00002/0001"):
        for i in range(1, 8):
            _write(root / clip / f"im{i}.png", rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    return root


def _lmdb_keys(path: Path) -> list[str]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        keys = [k.decode() for k in txn.cursor().iternext(values=False)]
    env.close()
    return keys


def _meta(path: Path) -> list[tuple[str, tuple[int, int, int], int]]:
    out = []
    for line in (path / "meta_info.txt").read_text().splitlines():
        m = META_LINE.match(line)
        assert m, line
        out.append((m.group(1), (int(m.group(2)), int(m.group(3)), int(m.group(4))), int(m.group(5))))
    return out


def test_collect_frames_natural_order_and_filters(vid4_like: Path, vimeo_like: Path) -> None:
    keys = [k for k, _ in collect_frames(vid4_like)]
    assert keys == [f"{c}/{n}" for c in ("calendar", "city") for n in VID4_NAMES]
    keys = [k for k, _ in collect_frames(vimeo_like, clips=["00001"], frames=["im4.png", "im1"])]
    assert keys == ["00001/0001/im1", "00001/0001/im4", "00001/0002/im1", "00001/0002/im4"]
    with pytest.raises(DataError, match="00003/0001"):
        collect_frames(vimeo_like, clips=["00001/0001", "00003/0001"])
    _write(vimeo_like / "00001/0001/im1.jpg", np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(DataError, match="share the key '00001/0001/im1'"):
        collect_frames(vimeo_like)


@pytest.mark.parametrize("degradation", ["BI", "BD"])
def test_make_lr_equals_degrade_and_resumes(vid4_like: Path, tmp_path: Path, degradation: str) -> None:
    dst = tmp_path / f"{degradation}x4"
    counts = make_lr_folder(vid4_like, dst, scale=4, degradation=degradation)
    assert counts == {"total": 6, "written": 6, "skipped": 0, "cropped": 0}
    outputs = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert outputs == sorted(f"{c}/{n}.png" for c in ("calendar", "city") for n in VID4_NAMES)
    for clip in ("calendar", "city"):
        for name in VID4_NAMES:
            lr = read_image(dst / clip / f"{name}.png")
            expected = degrade(read_image(vid4_like / clip / f"{name}.png"), 4, degradation)
            assert lr.shape == (8, 12, 3)
            np.testing.assert_array_equal(lr, expected)
    stamp = (dst / "city" / "Frame 10.png").stat().st_mtime_ns
    assert make_lr_folder(vid4_like, dst, scale=4, degradation=degradation) == {
        "total": 6,
        "written": 0,
        "skipped": 6,
        "cropped": 0,
    }
    assert (dst / "city" / "Frame 10.png").stat().st_mtime_ns == stamp


def test_make_lr_bi_and_bd_differ(vid4_like: Path, tmp_path: Path) -> None:
    make_lr_folder(vid4_like, tmp_path / "bi", degradation="BI")
    make_lr_folder(vid4_like, tmp_path / "bd", degradation="bd")
    bi, bd = (read_image(tmp_path / d / "calendar" / "Frame 1.png").astype(int) for d in ("bi", "bd"))
    assert np.abs(bi - bd).mean() > 1


def test_make_lr_modcrops_top_left(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (34, 50, 3), dtype=np.uint8)
    _write(tmp_path / "gt" / "clip" / "00000000.png", big)
    _write(tmp_path / "gt" / "clip" / "00000001.png", big[:32, :48])
    counts = make_lr_folder(tmp_path / "gt", tmp_path / "lr", scale=4, degradation="BI")
    assert counts == {"total": 2, "written": 2, "skipped": 0, "cropped": 1}
    lr = read_image(tmp_path / "lr" / "clip" / "00000000.png")
    assert lr.shape == (8, 12, 3)
    np.testing.assert_array_equal(lr, degrade(big[:32, :48], 4, "BI"))
    np.testing.assert_array_equal(lr, read_image(tmp_path / "lr" / "clip" / "00000001.png"))


def test_make_lr_nested_clips_with_workers(vimeo_like: Path, tmp_path: Path) -> None:
    clip_file = tmp_path / "sep_trainlist.txt"
    clip_file.write_text("00001/0001\n\n00002/0001\n")
    dst = vimeo_like / "BDx4"
    counts = make_lr_folder(vimeo_like, dst, degradation="BD", clips=read_clip_list(clip_file), workers=2)
    assert counts == {"total": 14, "written": 14, "skipped": 0, "cropped": 0}
    assert not (dst / "00001" / "0002").exists()
    for clip in ("00001/0001", "00002/0001"):
        for i in range(1, 8):
            np.testing.assert_array_equal(
                read_image(dst / clip / f"im{i}.png"),
                degrade(read_image(vimeo_like / clip / f"im{i}.png"), 4, "BD"),
            )
    assert make_lr_folder(vimeo_like, dst, degradation="BD", workers=2)["written"] == 7


def test_make_lr_redoes_truncated_output_and_names_bad_input(vid4_like: Path, tmp_path: Path) -> None:
    dst = tmp_path / "lr"
    make_lr_folder(vid4_like, dst)
    out = dst / "calendar" / "Frame 2.png"
    good = out.read_bytes()
    out.write_bytes(good[: len(good) // 2])
    assert make_lr_folder(vid4_like, dst)["written"] == 1
    assert out.read_bytes() == good
    (vid4_like / "city" / "Frame 2.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"city/Frame 2\.png"):
        make_lr_folder(vid4_like, dst, overwrite=True)
    with pytest.raises(DataError, match="input folder"):
        make_lr_folder(vid4_like, vid4_like)
    with pytest.raises(ValueError, match="degradation"):
        make_lr_folder(vid4_like, dst, degradation="BX")


def test_make_lmdb_roundtrip(vid4_like: Path, tmp_path: Path) -> None:
    dst = tmp_path / "gt.lmdb"
    counts = make_lmdb(vid4_like, dst, compress_level=1)
    assert {k: counts[k] for k in ("total", "written", "skipped", "extra")} == {
        "total": 6,
        "written": 6,
        "skipped": 0,
        "extra": 0,
    }
    assert (dst / "data.mdb").is_file()
    meta = _meta(dst)
    expected_keys = [f"{c}/{n}" for c in ("calendar", "city") for n in VID4_NAMES]
    assert [k for k, _, _ in meta] == expected_keys
    assert all(shape == (32, 48, 3) and level == 1 for _, shape, level in meta)
    assert sorted(_lmdb_keys(dst)) == sorted(expected_keys)
    env = lmdb.open(str(dst), readonly=True, lock=False)
    with env.begin() as txn:
        for key in expected_keys:
            bgr = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_COLOR)
            np.testing.assert_array_equal(bgr, read_image(vid4_like / f"{key}.png")[..., ::-1])
    env.close()
    again = make_lmdb(vid4_like, dst)
    assert (again["written"], again["skipped"]) == (0, 6)
    assert _meta(dst) == meta
    store = LmdbStore(dst)
    assert store.clips() == ["calendar", "city"]
    assert store.frames("calendar") == [f"calendar/{n}" for n in VID4_NAMES]
    for key in expected_keys:
        np.testing.assert_array_equal(store.read(key), read_image(vid4_like / f"{key}.png"))


def test_make_lmdb_vimeo_centre_frames(vimeo_like: Path, tmp_path: Path) -> None:
    clip_file = tmp_path / "sep_trainlist.txt"
    clip_file.write_text("00001/0001\n00001/0002\n")
    dst = tmp_path / "vimeo_GT_only4th.lmdb"
    counts = make_lmdb(vimeo_like, dst, clips=read_clip_list(clip_file), frames=["im4"])
    assert (counts["total"], counts["written"]) == (2, 2)
    assert [k for k, _, _ in _meta(dst)] == ["00001/0001/im4", "00001/0002/im4"]
    assert sorted(_lmdb_keys(dst)) == ["00001/0001/im4", "00001/0002/im4"]
    store = LmdbStore(dst)
    assert store.clips(depth=2) == ["00001/0001", "00001/0002"]
    np.testing.assert_array_equal(store.read("00001/0002/im4"), read_image(vimeo_like / "00001/0002/im4.png"))


def test_make_lmdb_resumes_after_interruption(
    vid4_like: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = tmp_path / "gt.lmdb"
    make_lmdb(vid4_like, dst, clips=["calendar"])
    assert len(_meta(dst)) == 3
    real_read, calls = prepare.read_image, []

    def failing_read(path: Path) -> np.ndarray:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_read(path)

    monkeypatch.setattr(prepare, "read_image", failing_read)
    with pytest.raises(KeyboardInterrupt):
        make_lmdb(vid4_like, dst, batch=2, map_size=2**20)
    assert not (dst / "meta_info.txt").exists()
    stored = _lmdb_keys(dst)
    assert sorted(stored) == sorted(
        ["calendar/Frame 1", "calendar/Frame 2", "calendar/Frame 10", "city/Frame 1"]
    )
    monkeypatch.setattr(prepare, "read_image", real_read)
    counts = make_lmdb(vid4_like, dst, batch=2)
    assert (counts["written"], counts["skipped"], counts["extra"]) == (2, 4, 0)
    keys = [k for k, _, _ in _meta(dst)]
    assert keys == [f"{c}/{n}" for c in ("calendar", "city") for n in VID4_NAMES]
    assert sorted(_lmdb_keys(dst)) == sorted(keys)
    store = LmdbStore(dst)
    for key in keys:
        np.testing.assert_array_equal(store.read(key), read_image(vid4_like / f"{key}.png"))


def test_make_lmdb_grows_full_map(vid4_like: Path, tmp_path: Path) -> None:
    dst = tmp_path / "small.lmdb"
    counts = make_lmdb(vid4_like, dst, compress_level=0, map_size=4 * 4096)
    assert counts["written"] == 6
    growth = counts["map_size"] // (4 * 4096)
    assert growth >= 2 and counts["map_size"] == 4 * 4096 * growth and growth & (growth - 1) == 0
    store = LmdbStore(dst)
    np.testing.assert_array_equal(store.read("city/Frame 10"), read_image(vid4_like / "city/Frame 10.png"))


@pytest.mark.parametrize("script", ["make_lr.py", "make_lmdb.py"])
def test_cli_help(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "--clips-from" in result.stdout


def _run_script(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
    return exit_info.value.code


def test_cli_runs(
    vimeo_like: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clip_file = tmp_path / "list.txt"
    clip_file.write_text("00002/0001\n")
    lr = tmp_path / "BIx4"
    args = [str(vimeo_like), str(lr), "--scale", "2", "--clips-from", str(clip_file)]
    assert _run_script("make_lr.py", args, monkeypatch) == 0
    assert "7 written" in capsys.readouterr().out
    np.testing.assert_array_equal(
        read_image(lr / "00002/0001/im3.png"), degrade(read_image(vimeo_like / "00002/0001/im3.png"), 2, "BI")
    )
    assert (
        _run_script(
            "make_lmdb.py",
            [str(lr), str(tmp_path / "lr.lmdb"), "--frames", "im1", "im7", "--compress-level", "3"],
            monkeypatch,
        )
        == 0
    )
    assert "2 written" in capsys.readouterr().out
    meta = _meta(tmp_path / "lr.lmdb")
    assert meta == [("00002/0001/im1", (8, 12, 3), 3), ("00002/0001/im7", (8, 12, 3), 3)]
    args = [str(tmp_path / "missing"), str(tmp_path / "x.lmdb")]
    assert _run_script("make_lmdb.py", args, monkeypatch) == 1
    assert "frame folder not found" in capsys.readouterr().err


def test_make_lr_worker_error_names_frame(vimeo_like: Path, tmp_path: Path) -> None:
    (vimeo_like / "00001/0002/im5.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    with pytest.raises(DataError, match=r"00001/0002/im5\.png"):
        make_lr_folder(vimeo_like, tmp_path / "lr", workers=2)
