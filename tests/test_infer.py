"""``vsrlab-infer``: streaming super-resolution of video files and frame folders."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hydra.core.global_hydra import GlobalHydra
from torch import Tensor

from conftest import compose_config, train_tiny_checkpoint
from vsrlab.apps.infer import infer
from vsrlab.cli.infer import main
from vsrlab.data.errors import DataError
from vsrlab.engine import load_model
from vsrlab.inference.stream import iter_chunks, super_resolve_stream
from vsrlab.inference.video_io import FrameWriter, iter_frames
from vsrlab.models import VSRModule
from vsrlab.ops.resize import matlab_imresize, matlab_imresize_tensor
from vsrlab.utils.images import frames_to_tensor, save_rgb, to_uint8_hwc

NUM_FRAMES, H, W = 12, 32, 40


def _stream(model: VSRModule, frames, frames_per_chunk: int, overlap: int | None = None):
    """The stream of the module's evaluated network with its evaluation options (what vsrlab-infer runs)."""
    return super_resolve_stream(
        model.evaluation_net(), frames, frames_per_chunk, overlap,
        padding=model.eval_cfg["padding"], windows_per_forward=model.eval_cfg["windows_per_forward"],
    )  # fmt: skip


# a 5-frame sliding-window net, trained for one step so that its weights are not the initial ones
TINY_NET = [
    "arch=sliding_window",
    "arch.num_frame=5",
    "arch.num_feat=8",
    "arch.num_extract_block=1",
    "arch.num_reconstruct_block=1",
    "arch.deformable_groups=2",
]


def _clip(num: int = NUM_FRAMES, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """``(num, h, w, 3)`` uint8: a smooth pattern moving by one pixel per frame, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    frames = []
    for t in range(num):
        base = np.stack([np.sin((x + t) / 3.0), np.cos((y - t) / 4.0), np.sin((x + y + 2 * t) / 5.0)], -1)
        frames.append(np.clip(127.5 + 100 * base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


def _write_video(path: Path, frames: np.ndarray, fps: float = 24.0, fourcc: str = "FFV1") -> Path:
    size = (frames.shape[2], frames.shape[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cv2 cannot write {fourcc} to {path}"
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def _read_video(path: Path) -> tuple[np.ndarray, float]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return np.stack(frames), fps


def _write_folder(folder: Path, frames: np.ndarray) -> Path:
    for i, frame in enumerate(frames):  # im1 ... im12: natural order, not lexicographic
        save_rgb(folder / f"im{i + 1}.png", frame)
    return folder


def _infer_cfg(tmp_path: Path, overrides: list[str]):
    return compose_config(
        "infer",
        ["extras.print_config=false", "progress=false", "device=cpu", *overrides],
        tmp_path / "infer_run",
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``last.ckpt`` of a one-step ``vsrlab-train`` run of a tiny 5-frame sliding-window net, perturbed."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("train") / "run", TINY_NET)


# ------------------------------------------------------------------------------- video, bicubic
def test_video_file_end_to_end_bicubic_equals_matlab_upsampling(tmp_path, monkeypatch):
    clip = _clip()
    src = _write_video(tmp_path / "clip.mkv", clip)
    decoded, _ = _read_video(src)
    np.testing.assert_array_equal(decoded, clip)  # FFV1 is lossless here: the reference is exact
    out = tmp_path / "sr" / "clip_x4.mkv"
    GlobalHydra.instance().clear()
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "vsrlab-infer",
            f"input={src}",
            f"output={out}",
            "arch=bicubic",
            "frames_per_chunk=5",
            "device=cpu",
            "progress=false",
            "extras.print_config=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
    )
    main()  # the Hydra app, as the console script runs it
    GlobalHydra.instance().clear()
    log_text = (tmp_path / "run" / "infer.log").read_text()
    assert log_text.count("super-resolved 12 frames 40x32 -> 160x128") == 1

    sr, fps = _read_video(out)
    assert sr.shape == (NUM_FRAMES, 4 * H, 4 * W, 3) and fps == pytest.approx(24.0)
    # the same arithmetic as the Bicubic arch (float32 MATLAB kernel): lossless output -> exact
    expected = to_uint8_hwc(matlab_imresize_tensor(frames_to_tensor(clip), 4))
    np.testing.assert_array_equal(sr, expected)
    # and the float64 numpy MATLAB imresize: off by one grey level at most, in rare rounding ties
    reference = np.stack([matlab_imresize(f, 4) for f in clip]).astype(int)
    diff = np.abs(sr.astype(int) - reference)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_mjpg_output_and_folder_of_pngs_from_a_lossy_video(tmp_path):
    clip = _clip(num=7)
    src = _write_video(tmp_path / "clip.avi", clip, fps=30.0, fourcc="MJPG")
    decoded, _ = _read_video(src)
    assert np.abs(decoded.astype(int) - clip).mean() > 0.5  # lossy: the reference is what cv2 decodes
    expected = to_uint8_hwc(matlab_imresize_tensor(frames_to_tensor(decoded), 4))

    summary = infer(_infer_cfg(tmp_path, [f"input={src}", f"output={tmp_path / 'pngs'}"]))
    pngs = sorted((tmp_path / "pngs").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:08d}.png" for i in range(7)]
    np.testing.assert_array_equal(np.stack([cv2.imread(str(p))[..., ::-1] for p in pngs]), expected)
    assert summary["frames"] == 7 and summary["input_size"] == [H, W]
    assert summary["output_size"] == [4 * H, 4 * W]
    assert summary["fps"] == pytest.approx(30.0)

    infer(_infer_cfg(tmp_path, [f"input={src}", f"output={tmp_path / 'sr.avi'}", "output_codec=mjpg"]))
    sr, fps = _read_video(tmp_path / "sr.avi")
    assert sr.shape == expected.shape and fps == pytest.approx(30.0)
    assert 0 < np.abs(sr.astype(int) - expected).mean() < 3  # MJPG: close, not equal


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_video_writer_quality_control_size_and_frame_rate(tmp_path):
    """PyAV's encoders: lossless RGB (FFV1 by default for .mkv, libx264rgb at CRF 0) bit-exact; H.264 (the
    default for .mp4) loses only its 4:2:0 chroma at CRF 0 and more as the CRF grows; frame rate (NTSC's
    30000/1001) and size kept."""
    import av

    clip = _clip(num=6, h=48, w=40)

    def written(name: str, **kwargs) -> np.ndarray:
        with FrameWriter(tmp_path / name, fps=30000 / 1001, **kwargs) as writer:
            for frame in clip:
                writer.write(frame)
        decoded, fps = _read_video(tmp_path / name)  # what OpenCV's FFmpeg reads back
        assert decoded.shape == clip.shape and fps == pytest.approx(29.97, abs=1e-3)
        return _decode(tmp_path / name).astype(int)

    np.testing.assert_array_equal(written("a.mkv"), clip)
    np.testing.assert_array_equal(written("b.mkv", codec="h264_lossless"), clip)
    chroma = np.stack(
        [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
         for f in clip]
    ).astype(int)  # fmt: skip
    errors = [np.abs(written(f"crf{q}.mp4", quality=q) - clip).mean() for q in (0, 18, 35)]
    assert abs(errors[0] - np.abs(chroma - clip).mean()) < 0.1  # CRF 0: nothing lost but the chroma
    assert errors[0] < errors[1] < errors[2], errors
    assert np.abs(written("d.mp4") - clip).mean() == errors[1]  # the default: CRF 18


# ------------------------------------------------------------------- frame folder, trained net
def test_frame_folder_chunked_output_equals_whole_clip_predict_clip(trained, tmp_path):
    clip = _clip()
    folder = _write_folder(tmp_path / "frames", clip)
    # 4 windows per forward (model.evaluation.windows_per_forward), 4 output frames per chunk, overlap 2:
    # 3 chunks
    cfg = _infer_cfg(
        tmp_path,
        [
            f"ckpt_path={trained}",
            f"input={folder}",
            f"output={tmp_path / 'out'}",
            "frames_per_chunk=4",
            "model.evaluation.windows_per_forward=4",
            "arch=bicubic",
        ],
    )  # the checkpoint's arch wins over arch=
    model = load_model(cfg)
    assert type(model.net).__name__ == "SlidingWindowVSR" and model.net.num_frame == 5 and not model.training
    assert model.eval_cfg["windows_per_forward"] == 4 and model.eval_cfg["padding"] == "reflection"
    lq = frames_to_tensor(clip)
    with torch.no_grad():
        whole = model.predict_clip(lq)  # (12, 3, 128, 160)

    summary = infer(cfg)
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert summary["frames"] == NUM_FRAMES and len(pngs) == NUM_FRAMES
    written = np.stack([cv2.imread(str(p))[..., ::-1] for p in pngs])
    np.testing.assert_array_equal(written, to_uint8_hwc(whole))

    # the float result, chunk by chunk, for every padding with the overlap it needs: bitwise equal when
    # frames_per_chunk is a multiple of the 4 windows per forward (the same forward batches as predict_clip);
    # other sizes make other batches, which CPU kernels may round differently (1 ulp at batch size 1)
    small = _clip(num=9, h=16, w=20, seed=1)
    ends = []
    for padding, overlap in [("reflection", 2), ("replicate", 2), ("circle", 4), ("reflection_circle", 4)]:
        model.eval_cfg["padding"] = padding
        with torch.no_grad():
            whole = model.predict_clip(frames_to_tensor(small))
        ends.append(whole[[0, -1]])
        for chunk_size in (1, 4, 8) if padding == "reflection" else (3, 4):
            chunks = list(_stream(model, iter(small), chunk_size, overlap))
            assert [c.shape[0] for c in chunks][:-1] == [chunk_size] * (len(chunks) - 1)
            if chunk_size % 4 == 0:
                assert torch.equal(torch.cat(chunks), whole), (padding, chunk_size)
            else:
                torch.testing.assert_close(torch.cat(chunks), whole, rtol=0, atol=1e-6)
        if overlap > 2:  # circular paddings reach num_frame - 1 frames away from a clip end
            with pytest.raises(ValueError, match="overlap=2 is too small"):
                next(_stream(model, iter(small), 4, 2))
    # the four paddings give four different results at the clip ends: the comparisons above tell them apart
    assert all(not torch.equal(a, b) for i, a in enumerate(ends) for b in ends[i + 1 :])


def test_official_weights_via_ckpt_or_arch_pretrained_and_spatial_padding(trained, tmp_path):
    hparams = torch.load(trained, map_location="cpu", weights_only=False)
    weights = tmp_path / "official.pth"  # BasicSR layout: {'params': state dict of the network}
    net_weights = {k[len("net.") :]: v for k, v in hparams["state_dict"].items() if k.startswith("net.")}
    torch.save({"params": net_weights}, weights)
    clip = _clip(num=6, h=30, w=37)  # not multiples of pad_to=4: reflect-padded to 32x40, cropped back
    folder = _write_folder(tmp_path / "frames", clip)
    reference = VSRModule.load_from_checkpoint(trained, map_location="cpu", weights_only=False).eval()
    lq = frames_to_tensor(clip)
    with torch.no_grad():
        padded = F.pad(lq, (0, 3, 0, 2), mode="reflect")
        expected = to_uint8_hwc(reference.predict_clip(padded)[..., :120, :148])

    for weights_arg in ([f"ckpt_path={weights}"], [f"arch.pretrained={weights}"]):
        out = tmp_path / "sr.mkv"
        infer(
            _infer_cfg(
                tmp_path,
                [*TINY_NET, *weights_arg, f"input={folder}", f"output={out}", "frames_per_chunk=4", "fps=10"],
            )
        )
        sr, fps = _read_video(out)
        assert fps == pytest.approx(10.0)
        np.testing.assert_array_equal(sr, expected)
    # without the weights, the same arch gives something else (the weights above were really loaded)
    infer(_infer_cfg(tmp_path, [*TINY_NET, f"input={folder}", f"output={out}"]))
    assert not np.array_equal(_read_video(out)[0], expected)


# ------------------------------------------------------------------------- recurrent, chunking
class CausalToyRecurrent(nn.Module):
    """A recurrent stand-in: frame t's output is frame t plus the running mean of frames <= t, x4 nearest."""

    temporal = "recurrent"  # the architecture contract (vsrlab.archs.contract)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C, h, w) -> (B, T, C, 4h, 4w)
        steps = torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1, 1, 1)
        y = x + x.cumsum(1) / steps
        return y.repeat_interleave(4, -2).repeat_interleave(4, -1)


def test_recurrent_net_sees_each_chunk_with_its_context():
    model = VSRModule(arch={"_target_": "vsrlab.archs.Bicubic"}).eval()
    model.net = CausalToyRecurrent()
    assert model.is_recurrent
    clip = _clip(num=11, h=8, w=12)
    whole = model.predict_clip(frames_to_tensor(clip))
    full_context = torch.cat(list(_stream(model, iter(clip), 3, overlap=11)))
    assert torch.equal(full_context, whole)  # the context covers the clip: whole-clip results
    chunks = list(_stream(model, iter(clip), 3))  # default overlap: 5 frames
    assert [c.shape[0] for c in chunks] == [3, 3, 3, 2]
    assert torch.equal(chunks[0], whole[:3])  # causal: the first chunk's context starts at the clip start
    assert not torch.equal(torch.cat(chunks[1:]), whole[3:])  # later ones lack frames 0.. of the history


def test_chunks_are_lazy_and_bounded():
    pulled = []

    def frames():
        for t in range(23):
            pulled.append(t)
            yield t

    chunks = []
    for chunk in iter_chunks(frames(), frames_per_chunk=5, overlap=3):
        assert len(chunk.frames) <= 5 + 2 * 3
        assert len(pulled) == min(23, chunk.core_stop + 3)  # read only as far as the context needs
        # the clip's length is known once the stream ended (the last context reached past frame 22)
        assert chunk.frames == list(range(max(0, chunk.core_start - 3), min(23, chunk.core_stop + 3)))
        assert chunk.frames[0] == chunk.start
        chunks.append((chunk.core_start, chunk.core_stop, chunk.total))
    assert chunks == [(0, 5, None), (5, 10, None), (10, 15, None), (15, 20, None), (20, 23, 23)]


# -------------------------------------------------------------------------------------- errors
def test_errors_name_the_missing_or_unreadable_file(trained, tmp_path):
    folder = _write_folder(tmp_path / "frames", _clip(num=3))
    with pytest.raises(FileNotFoundError, match="input not found: .*nothing.mp4"):
        infer(_infer_cfg(tmp_path, [f"input={tmp_path / 'nothing.mp4'}", f"output={tmp_path / 'o'}"]))
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.ckpt"):
        infer(
            _infer_cfg(
                tmp_path,
                [f"ckpt_path={tmp_path / 'missing.ckpt'}", f"input={folder}", f"output={tmp_path / 'o'}"],
            )
        )
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(DataError, match="cannot open video .*fake.mp4"):
        infer(_infer_cfg(tmp_path, [f"input={fake}", f"output={tmp_path / 'o'}"]))
    with pytest.raises(DataError, match="no image frames"):
        iter_frames((tmp_path / "empty").mkdir() or tmp_path / "empty")
    (tmp_path / "file").write_text("a file, not a folder")
    writer = FrameWriter(tmp_path / "file" / "x.mkv")
    with pytest.raises(OSError):
        writer.write(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="output_codec must be one of"):
        FrameWriter(tmp_path / "y.mkv", codec="QQQQ")
    with pytest.raises(ValueError, match="output_codec=h264 needs an even frame size, got 9x8"):
        FrameWriter(tmp_path / "y.mp4").write(np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="output_quality: output_codec=ffv1 is lossless"):
        FrameWriter(tmp_path / "y.mkv", quality=10)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs were checked
