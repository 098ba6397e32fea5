"""``vsrlab-export format=onnx``: every architecture exports to ONNX (the deformable alignment as
``GridSample``) and ONNX Runtime's output equals PyTorch's within 1e-4 (measured: 0 to 4e-7)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import vsrlab
from vsrlab.apps.export import ExportCheckError, export_onnx_model
from vsrlab.cli.export import main
from vsrlab.engine import CONFIG_DIR
from vsrlab.inference.onnx_export import check_onnx, export_onnx, run_onnx

ATOL = 1e-4
# small instances of every architecture (constructor arguments of conf/arch/<name>.yaml replaced)
TINY = {
    "bicubic": {},
    "sliding_window": dict(num_feat=16),
    "edvr": dict(num_feat=16, num_extract_block=1, num_reconstruct_block=1),
    "basicvsr": dict(num_feat=8, num_block=1),
    "vsr_transformer": dict(embed_dim=12, depths=[2], num_heads=[2], mid_channels=8, deformable_groups=3),
    "tdan": {},
    "flow_vsr": {},
    "iconvsr": dict(num_feat=8, num_block=1),
    "basicvsr_pp": dict(mid_channels=8, num_blocks=1),
    "psrt_recurrent": dict(embed_dim=12, depths=[2], num_heads=[2], mid_channels=8),
    "dksan": dict(
        num_feat=16, num_frame=3, num_extract_block=1, deformable_groups=4, rcab_per_level=[1, 1], upscale=4
    ),
}
FAST = ("bicubic", "sliding_window", "edvr", "basicvsr", "vsr_transformer")  # 2-10 s each on 2 cores


def tiny_net(name: str) -> torch.nn.Module:
    cfg = OmegaConf.to_container(OmegaConf.load(f"{CONFIG_DIR}/arch/{name}.yaml"))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("pretrained")}
    torch.manual_seed(0)
    return instantiate({**cfg, **TINY[name]}).eval()


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in TINY]
)  # fmt: skip
def test_every_arch_exports_and_onnx_runtime_matches_pytorch(name, tmp_path):
    net = tiny_net(name)
    frames = getattr(net, "num_frame", 5 if name == "iconvsr" else 3)  # recurrent: IconVSR's padding needs 5
    size = 64 if name in ("basicvsr_pp", "psrt_recurrent") else 32  # their SPyNet needs 64 x 64
    path = export_onnx(net, tmp_path / f"{name}.onnx", frames, size, size)
    lq = torch.rand(1, frames, 3, size, size, generator=torch.Generator().manual_seed(1))
    out = run_onnx(path, lq)
    with torch.no_grad():
        expected = net(lq).numpy()
    assert out.shape == expected.shape
    assert (out.shape[-2], out.shape[-1]) == (4 * size, 4 * size)
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)
    assert check_onnx(path, net, lq) == float(np.abs(out - expected).max())


def test_vsrlab_export_onnx_of_a_run(run_dir, capsys):
    main([f"source={run_dir}", "format=onnx", "onnx.height=16", "onnx.width=20"])
    printed = capsys.readouterr().out
    path = run_dir / "checkpoints" / "last_5x16x20.onnx"
    assert printed.startswith(f"wrote {path} (input lq: 1 x 5 x 3 x 16 x 20); ONNX Runtime") and path.exists()
    diff = float(re.search(r"max \|diff\| (\S+)", printed).group(1))
    assert 0 <= diff <= ATOL
    model = onnx.load(str(path))
    ops = {node.op_type for node in model.graph.node}
    assert "GridSample" in ops  # the deformable alignment: warps and a 1x1 convolution, no custom op
    assert not [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 5, 3, 16, 20]
    # another clip than the check's: the file computes what vsrlab.load's network computes
    net = vsrlab.load(run_dir).evaluation_net()
    lq = torch.rand(1, 5, 3, 16, 20, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = net(lq).numpy()
    assert expected.shape == (1, 3, 64, 80)
    np.testing.assert_allclose(run_onnx(path, lq), expected, rtol=0, atol=ATOL)


def test_export_refuses_a_wrong_window_and_a_failed_check(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"onnx.frames=3: the network's window has 5 frames"):
        export_onnx_model(run_dir, tmp_path / "x.onnx", frames=3, height=16, width=16)
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ExportCheckError, match=r"differs from PyTorch's by .* > onnx.atol=0"):
        export_onnx_model(run_dir, tmp_path / "y.onnx", height=16, width=16, atol=0.0)
    assert (tmp_path / "y.onnx").exists()  # kept for inspection


def test_earlier_flags_and_unknown_format(run_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(run_dir), "-o", "w.pth"])
    assert info.value.code == 2
    assert f"use `source={run_dir}`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([f"source={run_dir}", "format=tflite"])
    err = capsys.readouterr().err
    assert (
        info.value.code == 1
        and err.splitlines()[0] == "vsrlab-export: error: format=tflite: one of pth, onnx"
    )
