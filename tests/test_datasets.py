"""Real-dataset configs on small layouts written here: REDS, Vimeo-90K, Vid4, UDM10, Vid3oC, IntVID."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_config
from vsrlab.apps.evaluate import evaluate
from vsrlab.data import VideoDataset, degrade, read_image, write_flo
from vsrlab.data.augment import augment_arrays
from vsrlab.data.errors import DataError
from vsrlab.data.prepare import make_lmdb
from vsrlab.utils.images import frames_to_tensor

TINY_ARCH = [
    "arch.num_feat=8",
    "arch.num_extract_block=1",
    "arch.num_reconstruct_block=1",
    "arch.deformable_groups=2",
    "arch.num_frame=3",
]
LOADER = ["data.batch_size=2", "data.num_workers=0", "data.pin_memory=false", "extras.print_config=false"]


def frames(seed: int, t: int, h: int, w: int) -> np.ndarray:
    """Smooth random RGB frames (T, H, W, 3) uint8, different for every (seed, t)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (t, h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    big = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in small])
    return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)


def write_clip(folder: Path, clip: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, clip, strict=True):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def write_pair(
    gt_dir: Path,
    lq_dir: Path | None,
    clip: str,
    gt: np.ndarray,
    names: list[str],
    scale: int = 4,
    degradation: str = "BI",
) -> None:
    write_clip(gt_dir / clip, gt, names)
    if lq_dir is not None:
        write_clip(lq_dir / clip, degrade(gt, scale, degradation), names)


def reds_layout(root: Path, size: tuple[int, int] = (32, 48)) -> dict[str, np.ndarray]:
    clips = {}
    for i, clip in enumerate(["000", "001", "002", "011", "015", "020"]):
        clips[clip] = frames(i, 6, *size)
        write_pair(
            root / "train_sharp",
            root / "train_sharp_bicubic/X4",
            clip,
            clips[clip],
            [f"{t:08d}" for t in range(6)],
        )
    clips["240"] = frames(99, 6, *size)  # REDS's val clip 000 is clip 240
    write_pair(
        root / "val_sharp", root / "val_sharp_bicubic/X4", "000", clips["240"], [f"{t:08d}" for t in range(6)]
    )
    return clips


def vimeo_layout(
    root: Path, degradation: str = "BI", size: tuple[int, int] = (32, 32)
) -> dict[str, np.ndarray]:
    clips = {}
    for i, clip in enumerate(["00001/0001", "00001/0002", "00002/0001"]):
        clips[clip] = frames(10 + i, 7, *size)
        write_pair(
            root / "vimeo_septuplet/sequences",
            root / f"{degradation}x4",
            clip,
            clips[clip],
            [f"im{t + 1}" for t in range(7)],
            degradation=degradation,
        )
    (root / "vimeo_septuplet/sep_trainlist.txt").write_text("00001/0001\n00001/0002\n")
    (root / "vimeo_septuplet/sep_testlist.txt").write_text("00002/0001\n")
    return clips


def vid4_layout(root: Path, gt_dir: str = "GT", names: int = 12) -> dict[str, np.ndarray]:
    clips = {}
    for i, clip in enumerate(["calendar", "city"]):
        clips[clip] = frames(20 + i, names, 32, 40)
        # "Frame 1" .. "Frame 12": natural order, not lexicographic
        write_pair(root / gt_dir, None, clip, clips[clip], [f"Frame {t + 1}" for t in range(names)])
    return clips


def compose(name: str, tmp_path: Path, overrides: list[str], run: str = "run"):
    return compose_config(name, [*LOADER, *overrides], tmp_path / run)


def locate(patch: np.ndarray, frame: np.ndarray) -> tuple[int, int]:
    """Top-left of ``patch`` (h, w, 3) inside ``frame`` (exact match)."""
    res = cv2.matchTemplate(frame.astype(np.float32), patch.astype(np.float32), cv2.TM_SQDIFF)
    top, left = np.unravel_index(np.argmin(res), res.shape)
    assert res[top, left] == 0
    return int(top), int(left)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- REDS
def test_reds_window_training_patches_match_stored_frames_and_split(tmp_path):
    clips = reds_layout(tmp_path / "REDS")
    cfg = compose(
        "train",
        tmp_path,
        [
            "data=reds",
            f"data.root={tmp_path / 'REDS'}",
            *TINY_ARCH,
            "data.train.gt_size=16",
            "data.train.use_rot=false",
            "data.train.use_hflip=false",
        ],
    )
    dm = instantiate(cfg.data)
    train, val = dm.train_set, dm.val_set
    assert train.sampling == "window" and train.num_frames == 3
    assert train.clips == ["001", "002", "240"]  # REDS4 held out, val_sharp/000 -> 240
    assert val.clips == ["000", "011", "015", "020"]
    assert len(train) == 3 * 6  # every frame is a window centre
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (2, 3, 3, 4, 4) and batch["gt"].shape == (2, 1, 3, 16, 16)
    for i in range(2):
        clip, frame = batch["key"][i].split("/")
        t = int(frame)
        gt_full = clips[clip]
        lq_full = degrade(gt_full, 4)
        top, left = locate(to_uint8(batch["lq"][i])[1], lq_full[t])
        assert np.array_equal(
            to_uint8(batch["gt"][i])[0], gt_full[t, top * 4 : top * 4 + 16, left * 4 : left * 4 + 16]
        )
        # neighbours are the reflected window around t, same crop
        window = [abs(t - 1) if t > 0 else 1, t, t + 1 if t < 5 else 4]
        for j, s in enumerate(window):
            assert np.array_equal(to_uint8(batch["lq"][i])[j], lq_full[s, top : top + 4, left : left + 4])
    sample = val[0]
    assert (
        sample["key"] == "000"
        and sample["lq"].shape == (6, 3, 8, 12)
        and sample["gt"].shape == (6, 3, 32, 48)
    )
    assert np.array_equal(to_uint8(sample["gt"]), clips["000"])


def test_reds_official_split_and_recurrent_sequences(tmp_path):
    clips = reds_layout(tmp_path / "REDS")
    common = [
        "data=reds_official",
        f"data.root={tmp_path / 'REDS'}",
        "arch=basicvsr",
        "data.train.num_frames=4",
        "data.train.gt_size=16",
        "data.train.use_rot=false",
        "data.train.use_hflip=false",
    ]
    with pytest.raises(
        Exception, match="clip .241. requested is absent"
    ):  # REDSofficial4: 240, 241, 246, 257
        _ = instantiate(compose("train", tmp_path, common, "a").data).val_set
    dm = instantiate(compose("train", tmp_path, [*common, "data.val.clips=[240]"], "b").data)
    assert dm.train_set.sampling == "sequence"
    assert dm.train_set.clips == ["000", "001", "002", "011", "015", "020"]
    sample = dm.train_set[5]
    assert sample["lq"].shape == (4, 3, 4, 4) and sample["gt"].shape == (4, 3, 16, 16)
    start = sample["frame_index"]
    clip = clips[sample["key"]]
    lq = degrade(clip, 4)
    top, left = locate(to_uint8(sample["lq"])[0], lq[start])
    assert np.array_equal(to_uint8(sample["lq"]), lq[start : start + 4, top : top + 4, left : left + 4])


def test_reds_official_val_clip_from_val_folder(tmp_path):
    clips = reds_layout(tmp_path / "REDS")
    cfg = compose(
        "eval", tmp_path, ["data=reds_official", f"data.root={tmp_path / 'REDS'}", "data.val.clips=[240]"]
    )
    val = instantiate(cfg.data).val_set
    assert np.array_equal(to_uint8(val[0]["gt"]), clips["240"])
    assert np.array_equal(to_uint8(val[0]["lq"]), degrade(clips["240"], 4))


def test_lmdb_backend_gives_the_same_batches_as_folders(tmp_path):
    root = tmp_path / "REDS"
    reds_layout(root)
    for sub in ("train_sharp", "train_sharp_bicubic/X4", "val_sharp", "val_sharp_bicubic/X4"):
        make_lmdb(root / sub, root / f"{sub}.lmdb")
    common = ["data=reds", f"data.root={root}", *TINY_ARCH, "data.train.gt_size=16"]
    folder = instantiate(compose("train", tmp_path, common, "a").data)
    lmdb = instantiate(compose("train", tmp_path, [*common, "data.backend=lmdb"], "b").data)
    assert type(lmdb.train_set.gt).__name__ == "CombinedStore"
    assert lmdb.train_set.clips == folder.train_set.clips
    for index in (0, 7, 17):
        a, b = folder.train_set[index], lmdb.train_set[index]
        assert a["key"] == b["key"] and torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert torch.equal(folder.val_set[2]["gt"], lmdb.val_set[2]["gt"])


# ---------------------------------------------------------------------- Vimeo-90K
def test_vimeo_sliding_window_centre_gt_and_recurrent_flip_sequence(tmp_path):
    clips = vimeo_layout(tmp_path / "vimeo")
    cfg = compose(
        "train",
        tmp_path,
        [
            "data=vimeo90k",
            f"data.root={tmp_path / 'vimeo'}",
            "arch=edvr",
            "data.train.gt_size=32",
            "data.train.use_rot=false",
            "data.train.use_hflip=false",
        ],
        "a",
    )
    dm = instantiate(cfg.data)
    train = dm.train_set
    assert train.clips == ["00001/0001", "00001/0002"] and len(train) == 2
    sample = train[0]
    assert sample["key"] == "00001/0001/im4"
    assert sample["lq"].shape == (5, 3, 8, 8) and sample["gt"].shape == (1, 3, 32, 32)  # im2..im6, GT im4
    assert np.array_equal(to_uint8(sample["gt"])[0], clips["00001/0001"][3])
    assert np.array_equal(to_uint8(sample["lq"]), degrade(clips["00001/0001"][1:6], 4))
    rec = instantiate(
        compose(
            "train",
            tmp_path,
            [
                "data=vimeo90k",
                f"data.root={tmp_path / 'vimeo'}",
                "arch=basicvsr",
                "data.train.gt_size=32",
                "data.train.use_rot=false",
                "data.train.use_hflip=false",
            ],
            "b",
        ).data
    )
    sample = rec.train_set[1]
    assert rec.train_set.sampling == "sequence" and sample["lq"].shape == (14, 3, 8, 8)
    lq = degrade(clips["00001/0002"], 4)
    assert np.array_equal(to_uint8(sample["lq"]), np.concatenate([lq, lq[::-1]]))
    assert dm.val_set.clips == ["00002/0001"] and dm.val_set[0]["gt"].shape == (7, 3, 32, 32)


def test_vimeo_eval_scores_only_the_centre_frame_on_y(tmp_path):
    clips = vimeo_layout(tmp_path / "vimeo", degradation="BD")
    cfg = compose(
        "eval",
        tmp_path,
        ["data=vimeo90k", f"data.root={tmp_path / 'vimeo'}", "data.degradation=BD", "arch=bicubic"],
    )
    results = evaluate(cfg)
    from vsrlab.metrics import calculate_psnr
    from vsrlab.ops.resize import matlab_imresize

    gt = clips["00002/0001"][3]
    expected = calculate_psnr(matlab_imresize(degrade(gt[None], 4, "BD")[0], 4), gt, 0, test_y_channel=True)
    assert results["clips"]["00002/0001"]["frames"] == 1
    assert results["mean"]["psnr"] == pytest.approx(expected, abs=1e-6)


class CumulativeMean(torch.nn.Module):
    """A toy recurrent 'network': frame t's output is the mean of frames 0..t, upsampled x1."""

    temporal = "recurrent"  # the architecture contract (vsrlab.archs.contract)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, lq.shape[1] + 1, dtype=lq.dtype).view(1, -1, 1, 1, 1)
        return lq.cumsum(1) / steps


def test_mirror_protocol_averages_the_two_predictions_of_each_frame(make_cfg):
    from vsrlab.models import VSRModule

    module = instantiate(make_cfg().model)
    module.net = CumulativeMean()
    lq = torch.rand(7, 3, 4, 4)
    out = module.predict_clip(lq, [3], mirror=True)
    forward = lq[:4].mean(0)
    mirrored = torch.cat([lq, lq.flip(0)])[:11].mean(0)  # frame 3 is position 10 of the mirrored clip
    assert torch.allclose(out[0], 0.5 * (forward + mirrored))
    assert torch.allclose(module.predict_clip(lq, [3])[0], forward)
    assert isinstance(module, VSRModule)


# --------------------------------------------------------------- Vid4 and friends
def test_vid4_natural_order_and_lr_made_from_gt_when_absent(tmp_path):
    clips = vid4_layout(tmp_path / "Vid4")
    cfg = compose("eval", tmp_path, ["data=vid4", f"data.root={tmp_path / 'Vid4'}", "data.degradation=BD"])
    val = instantiate(cfg.data).val_set
    assert val.clips == ["calendar", "city"] and val.lq is None
    sample = val[0]
    assert np.array_equal(to_uint8(sample["gt"]), clips["calendar"])  # Frame 1, 2, ..., 10, 11, 12
    assert np.array_equal(to_uint8(sample["lq"]), degrade(clips["calendar"], 4, "BD"))


def test_vid4_eval_saves_output_frames(tmp_path):
    clips = vid4_layout(tmp_path / "Vid4", names=3)
    cfg = compose(
        "eval",
        tmp_path,
        ["data=vid4", f"data.root={tmp_path / 'Vid4'}", "arch=bicubic", "eval.save_images=true"],
    )
    evaluate(cfg)
    saved = sorted((tmp_path / "run/images/test/city").glob("*.png"))
    assert [p.name for p in saved] == ["00000000.png", "00000001.png", "00000002.png"]
    from vsrlab.ops.resize import matlab_imresize

    lr = degrade(clips["city"][1:2], 4)[0]
    assert np.array_equal(read_image(saved[1]), matlab_imresize(lr, 4))


@pytest.mark.parametrize("name,layout", [("udm10", "GT"), ("vid3oc", "val/HR"), ("intvid", "HR")])
def test_other_test_sets_load(tmp_path, name, layout):
    root = tmp_path / name
    scale = 16 if name != "udm10" else 4
    clip_names = (
        ["050", "051", "052", "053", "054", "055", "056", "057", "058", "059"]
        if name == "intvid"
        else ["a", "b"]
    )
    # IntVID's protocol scores 14 consecutive frames per clip (the first 14: val.max_frames)
    count, used = (16, 14) if name == "intvid" else (3, 3)
    for i, clip in enumerate(clip_names):
        write_clip(root / layout / clip, frames(i, count, 64, 64), [str(t) for t in range(count)])
    val = instantiate(compose("eval", tmp_path, [f"data={name}", f"data.root={root}"]).data).val_set
    sample = val[1]
    assert sample["lq"].shape == (used, 3, 64 // scale, 64 // scale)
    assert sample["gt"].shape == (used, 3, 64, 64)
    expected = degrade(frames(1, count, 64, 64)[:used], scale, "BD" if name == "udm10" else "BI")
    assert np.array_equal(to_uint8(sample["lq"]), expected)
    if name == "intvid":  # a clip shorter than the protocol is refused, naming it
        short = tmp_path / "short"
        for i, clip in enumerate(clip_names):
            write_clip(short / layout / clip, frames(i, 3, 64, 64), ["0", "1", "2"])
        val = instantiate(compose("eval", tmp_path, [f"data={name}", f"data.root={short}"], "b").data).val_set
        with pytest.raises(DataError, match="clip '050': max_frames=14 but .*050 has 3 frames"):
            val[0]


def test_vid3oc_training_x16_patches(tmp_path):
    root = tmp_path / "Vid3oC"
    for i in range(2):
        gt = frames(i, 5, 64, 64)
        write_pair(
            root / "train/HR", root / "train/LR", f"{i:03d}", gt, [f"{t:03d}" for t in range(5)], scale=16
        )
    cfg = compose(
        "train",
        tmp_path,
        ["data=vid3oc", f"data.root={root}", *TINY_ARCH, "arch.upscale=4", "data.train.gt_size=32"],
    )
    sample = instantiate(cfg.data).train_set[3]
    assert sample["lq"].shape == (3, 3, 2, 2) and sample["gt"].shape == (1, 3, 32, 32)


# ----------------------------------------------------------------- augmentation
def test_flips_and_transpose_keep_flow_consistent():
    """A frame pair translated by (dx, dy) keeps a flow equal to the augmented translation."""
    base = frames(0, 1, 24, 24)[0]
    dx, dy = 2, 1
    moved = np.roll(base, (dy, dx), axis=(0, 1))
    stack = np.stack([base, moved])
    flow = np.zeros((2, 2, 24, 24), np.float32)
    flow[1, 0], flow[1, 1] = dx, dy  # from frame 0 to frame 1: p -> p + (dx, dy)
    for hflip, vflip, transpose in [
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (True, True, True),
    ]:
        (out,), f = augment_arrays([stack], flow, hflip, vflip, transpose)
        fx, fy = int(f[1, 0, 5, 5]), int(f[1, 1, 5, 5])
        assert np.array_equal(np.roll(out[0], (fy, fx), axis=(0, 1)), out[1]), (hflip, vflip, transpose)


def test_precomputed_flow_files_enter_the_batch(tmp_path):
    root = tmp_path / "REDS"
    reds_layout(root)
    rng = np.random.default_rng(0)
    expected = {}
    for t in (1, 3):
        expected[t] = rng.normal(size=(2, 8, 12)).astype(np.float32)
        write_flo(tmp_path / f"flow/001/00000002/{t:08d}.flo", expected[t])
    ds = VideoDataset(
        gt_root=str(root / "train_sharp"),
        lq_root=str(root / "train_sharp_bicubic/X4"),
        clips=["001"],
        sampling="window",
        num_frames=3,
        flow_root=str(tmp_path / "flow"),
    )
    sample = ds[2]  # window 1, 2, 3 around frame 2
    assert sample["flow"].shape == (3, 2, 8, 12)
    assert np.array_equal(sample["flow"][0].numpy(), expected[1]) and np.array_equal(
        sample["flow"][2].numpy(), expected[3]
    )
    assert not sample["flow"][1].any()  # the centre's flow to itself is zero
    with pytest.raises(ValueError, match="001/00000001/00000000.flo"):
        ds[1]  # window 0, 1, 2 around frame 1 has no flow files


def test_samples_are_functions_of_their_index_and_streams_draw_new_crops(tmp_path):
    root = tmp_path / "REDS"
    reds_layout(root)
    ds = VideoDataset(
        gt_root=str(root / "train_sharp"),
        lq_root=str(root / "train_sharp_bicubic/X4"),
        clips=["001", "002"],
        sampling="window",
        num_frames=3,
        gt_size=16,
        use_hflip=True,
        use_rot=True,
        seed=3,
    )
    assert len(ds) == 12
    assert torch.equal(ds[5]["lq"], ds[5]["lq"])
    assert ds[5]["key"] == ds[17]["key"]  # the same window centre one epoch later ...
    assert not torch.equal(ds[5]["lq"], ds[17]["lq"])  # ... with another crop / flip


def test_frames_to_tensor_roundtrip():
    x = frames(0, 2, 8, 8)
    assert np.array_equal(to_uint8(frames_to_tensor(x)), x)


def _other_layout(root: Path, layout: str, clip_names: list[str], count: int = 3) -> None:
    for i, clip in enumerate(clip_names):
        write_clip(root / layout / clip, frames(i, count, 32, 32), [str(t) for t in range(count)])


LMDB_CASES = {  # config: (layout writer, folders converted to <folder>.lmdb)
    "reds": (
        lambda r: reds_layout(r),
        ["train_sharp", "train_sharp_bicubic/X4", "val_sharp", "val_sharp_bicubic/X4"],
    ),
    "vimeo90k": (lambda r: vimeo_layout(r), ["vimeo_septuplet/sequences", "BIx4"]),
    "vid4": (lambda r: vid4_layout(r, names=3), ["GT"]),
    "udm10": (lambda r: _other_layout(r, "GT", ["a", "b"]), ["GT"]),
    "vid3oc": (lambda r: _other_layout(r, "val/HR", ["a", "b"]), ["val/HR"]),
    "intvid": (lambda r: _other_layout(r, "HR", [f"{c:03d}" for c in range(50, 60)], count=14), ["HR"]),
}


@pytest.mark.parametrize("name", sorted(LMDB_CASES))
def test_every_dataset_config_reads_folders_and_lmdb_alike(tmp_path, name):
    write, folders = LMDB_CASES[name]
    root = tmp_path / name
    write(root)
    for folder in folders:
        make_lmdb(root / folder, root / f"{folder}.lmdb")
    folder_dm = instantiate(compose("eval", tmp_path, [f"data={name}", f"data.root={root}"], "a").data)
    lmdb_dm = instantiate(
        compose("eval", tmp_path, [f"data={name}", f"data.root={root}", "data.backend=lmdb"], "b").data
    )
    assert type(lmdb_dm.val_set.gt).__name__ in ("LmdbStore", "CombinedStore")
    assert lmdb_dm.val_set.clips == folder_dm.val_set.clips
    for index in range(len(folder_dm.val_set)):
        a, b = folder_dm.val_set[index], lmdb_dm.val_set[index]
        assert a["key"] == b["key"] and torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
        assert a["gt"].shape[-1] == 4 * a["lq"].shape[-1] * (4 if name in ("vid3oc", "intvid") else 1)


def test_lmdb_read_in_the_main_process_then_in_loader_workers(tmp_path):
    """py-lmdb refuses to reopen a path a forked worker inherited as open; the stores close
    inherited copies."""
    root = tmp_path / "REDS"
    reds_layout(root)
    for sub in ("train_sharp", "train_sharp_bicubic/X4"):
        make_lmdb(root / sub, root / f"{sub}.lmdb")
    ds = VideoDataset(
        gt_root=str(root / "train_sharp"),
        lq_root=str(root / "train_sharp_bicubic/X4"),
        backend="lmdb",
        sampling="window",
        num_frames=3,
        gt_size=16,
    )
    expected = ds[0]
    from vsrlab.data import VSRDataModule

    dm = VSRDataModule(
        train=ds, batch_size=2, num_workers=2, persistent_workers=False, shuffle=False, stream=True
    )
    batch = next(iter(dm.train_dataloader()))
    assert torch.equal(batch["lq"][0], expected["lq"]) and torch.equal(batch["gt"][0], expected["gt"])
