"""The Python API a notebook uses: ``vsrlab.load`` (a run directory, a ``.ckpt``, an exported ``.pth`` with
its arch) and ``super_resolve`` (numpy or tensor frames, any length, streamed), scored with
``vsrlab.metrics``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vsrlab
from vsrlab.apps.export import export
from vsrlab.models import VSRModule
from vsrlab.run.checkpoints import run_checkpoint
from vsrlab.utils.images import frames_to_tensor, to_uint8_hwc


def _frames(num: int, h: int = 12, w: int = 16) -> np.ndarray:  # multiples of pad_to=4: no padding
    return np.random.default_rng(3).integers(0, 256, (num, h, w, 3), dtype=np.uint8)


def test_load_a_run_directory_and_super_resolve_numpy_and_tensor_frames(run_dir):
    net = vsrlab.load(run_dir)
    assert isinstance(net, VSRModule) and not net.training and net.device.type == "cpu"
    assert net.hparams.arch["num_frame"] == 5 and run_checkpoint(run_dir).name == "last.ckpt"
    reference = VSRModule.load_from_checkpoint(run_checkpoint(run_dir), map_location="cpu").eval()
    frames = _frames(11)  # not a multiple of the chunk: the last chunk is short
    with torch.no_grad():
        expected = reference.predict_clip(frames_to_tensor(frames)).clamp(0, 1)
    out = net.super_resolve(frames, frames_per_chunk=4)
    assert out.dtype == np.uint8 and out.shape == (11, 48, 64, 3)
    np.testing.assert_array_equal(out, to_uint8_hwc(expected))
    assert not np.array_equal(out[0], out[1])
    as_list = net.super_resolve(list(frames), frames_per_chunk=8)  # a sequence of frames, other chunks
    np.testing.assert_array_equal(as_list, out)
    tensor = net.super_resolve(frames_to_tensor(frames), frames_per_chunk=8)
    assert tensor.dtype == torch.float32 and tensor.shape == (11, 3, 48, 64)
    assert torch.equal(tensor, expected)  # 8 frames per chunk = the clip's forward batches: bitwise equal
    # scored with vsrlab.metrics: the PSNR of the 8-bit output against the float one, by hand
    psnr = vsrlab.metrics.calculate_psnr(out[5], to_uint8_hwc(tensor[5]))
    assert psnr == math.inf
    noisy = np.clip(out[5].astype(int) + 3, 0, 255).astype(np.uint8)
    mse = np.mean((noisy.astype(np.float64) - out[5]) ** 2)
    assert vsrlab.metrics.calculate_psnr(noisy, out[5]) == pytest.approx(10 * math.log10(255**2 / mse))


def test_load_an_exported_pth_with_its_arch(run_dir, tmp_path):
    pth = export(run_dir, tmp_path / "tiny.pth")
    frames = _frames(7)
    expected = vsrlab.load(run_dir / "checkpoints" / "last.ckpt").super_resolve(frames)
    arch = dict(vsrlab.load(run_dir).hparams.arch)
    np.testing.assert_array_equal(vsrlab.load(pth, arch=arch).super_resolve(frames), expected)
    # a name of conf/arch with overrides gives the same network
    by_name = vsrlab.load(pth, arch="sliding_window", overrides=[
        f"arch.{k}={arch[k]}" for k in ("num_frame", "num_feat", "num_extract_block", "num_reconstruct_block",
                                        "deformable_groups")])  # fmt: skip
    np.testing.assert_array_equal(by_name.super_resolve(frames), expected)
    with pytest.raises(ValueError, match="tiny.pth holds weights without their architecture: give arch="):
        vsrlab.load(pth)
    with pytest.raises(FileNotFoundError, match="nowhere: no run directory"):
        vsrlab.load(tmp_path / "nowhere")


def test_super_resolve_refuses_a_network_that_needs_the_data_flow():
    model = VSRModule(
        arch={
            "_target_": "vsrlab.archs.SlidingWindowVSR",
            "num_feat": 8,
            "num_frame": 3,
            "align_type": "flow",
        },
        flow_source="batch",
    )
    with pytest.raises(ValueError, match="model.flow_source=batch but the a clip given to super_resolve"):
        model.super_resolve(_frames(3))
