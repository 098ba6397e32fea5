"""Cross-check vsrlab's architectures against a BasicSR source checkout.

BasicSR's ``archs`` need torchvision and compiled deformable-convolution extensions, neither of
which exists on a CPU-only machine with vsrlab. This script imports BasicSR's architecture files
from a source tree (``--basicsr``, the directory holding the ``basicsr`` package) with those two
dependencies replaced by vsrlab's pure-PyTorch ``deform_conv2d`` (itself tested against a direct
Eq. 1 implementation), builds every model pair with the same arguments, loads BasicSR's randomly
initialised weights into vsrlab through :func:`vsrlab.archs.load_pretrained` and reports
parameter counts and the largest output difference.

    python scripts/crosscheck_basicsr.py --basicsr path/to/BasicSR [--out docs/crosscheck.md]

Nothing of BasicSR is copied into vsrlab; the tree is only imported at run time.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


class _ModulatedDeformConvPack(nn.Module):
    """Stand-in for BasicSR's compiled ``ModulatedDeformConvPack``: same parameters and forward."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.deformable_groups = groups, deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.conv_offset = nn.Conv2d(
            in_channels,
            deformable_groups * 3 * kernel_size * kernel_size,
            kernel_size,
            stride,
            padding,
            dilation,
        )
        self.init_weights()

    def init_weights(self) -> None:
        stdv = 1.0 / (self.in_channels * self.kernel_size[0] * self.kernel_size[1]) ** 0.5
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if hasattr(self, "conv_offset"):
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)


def import_basicsr_archs(
    basicsr_root: str | Path, names: list[str], real_torchvision: bool = False
) -> dict[str, types.ModuleType]:
    """Import ``basicsr/archs/<name>.py`` for each name with torchvision and the DCN extension stubbed.

    ``real_torchvision``: import the installed torchvision instead of the stub, so that BasicSR's
    deformable alignment runs torchvision's own ``deform_conv2d`` kernels (ImportError without it);
    the compiled DCN extension stays stubbed (BasicSR's packs call torchvision's op).
    """
    from vsrlab.ops import deform_conv2d

    pkg_root = Path(basicsr_root) / "basicsr"
    if not (pkg_root / "archs").is_dir():
        raise FileNotFoundError(
            f"{pkg_root / 'archs'} not found: --basicsr must be a BasicSR source checkout"
        )

    def tv_deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
        return deform_conv2d(
            x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask
        )

    if real_torchvision:
        import torchvision.ops  # noqa: F401
    else:
        tv_ops = _module("torchvision.ops", deform_conv2d=tv_deform_conv2d)
        _module("torchvision", __version__="0.20.0", ops=tv_ops)
    _module("basicsr", __path__=[str(pkg_root)])
    _module(
        "basicsr.utils",
        __path__=[],
        get_root_logger=lambda *a, **k: logging.getLogger("basicsr"),
        scandir=None,
    )

    class Registry:
        def register(self, obj: Any = None) -> Callable:
            return (lambda o: o) if obj is None else obj

    _module("basicsr.utils.registry", ARCH_REGISTRY=Registry())
    _module("basicsr.ops", __path__=[])
    _module("basicsr.ops.dcn", ModulatedDeformConvPack=_ModulatedDeformConvPack, modulated_deform_conv=None)
    _module("basicsr.archs", __path__=[str(pkg_root / "archs")])
    loaded = {}
    for name in ["arch_util", *names]:
        full = f"basicsr.archs.{name}"
        if full not in sys.modules:
            spec = importlib.util.spec_from_file_location(full, pkg_root / "archs" / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[full] = mod
            spec.loader.exec_module(mod)
        loaded[name] = sys.modules[full]
    return loaded


def with_cuda_reported(cls: type, *args: Any, **kwargs: Any) -> nn.Module:
    """Build ``cls`` while torch reports CUDA: BasicSR's BasicVSR++ skips its alignment otherwise."""
    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: True
    try:
        return cls(*args, **kwargs)
    finally:
        torch.cuda.is_available = real


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def compare(ref: nn.Module, ours: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Load ``ref``'s weights into ``ours`` (strict, BasicSR layout) and compare outputs."""
    from vsrlab.archs import load_pretrained

    load_pretrained(ours, {"params": ref.state_dict()}, strict=True)
    ref.eval(), ours.eval()
    with torch.no_grad():
        a, b = ref(*inputs), ours(*inputs)
    return {
        "params_ref": num_params(ref),
        "params_ours": num_params(ours),
        "max_abs_diff": float((a - b).abs().max()),
        "ref_abs_mean": float(a.abs().mean()),
    }


def cases(basicsr_root: Path) -> list[tuple[str, Callable[[], tuple[nn.Module, nn.Module, tuple]]]]:
    """(name, builder) pairs; each builder returns (BasicSR model, vsrlab model, inputs)."""
    from vsrlab import archs as ours

    mods = import_basicsr_archs(
        basicsr_root, ["spynet_arch", "edvr_arch", "basicvsr_arch", "basicvsrpp_arch"]
    )
    edvr, bvsr, bvsrpp, spy = (
        mods[k] for k in ("edvr_arch", "basicvsr_arch", "basicvsrpp_arch", "spynet_arch")
    )
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    def perturb(model: nn.Module) -> nn.Module:
        # zero-initialised offset convs would hide every alignment difference: randomise them a little
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "conv_offset" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 1e-2)
        return model

    edvr_m = dict(
        num_feat=64, num_frame=5, deformable_groups=8, num_extract_block=5, num_reconstruct_block=10
    )
    edvr_l = dict(edvr_m, num_feat=128, num_reconstruct_block=40)
    return [
        ("SPyNet", lambda: (spy.SpyNet(), ours.SPyNet(), (rand(1, 3, 64, 80), rand(1, 3, 64, 80)))),
        ("EDVR-M", lambda: (perturb(edvr.EDVR(**edvr_m)), ours.EDVR(**edvr_m), (rand(1, 5, 3, 32, 32),))),
        (
            "EDVR-M without TSA",
            lambda: (
                perturb(edvr.EDVR(**edvr_m, with_tsa=False)),
                ours.EDVR(**edvr_m, with_tsa=False),
                (rand(1, 5, 3, 32, 32),),
            ),
        ),
        ("EDVR-L", lambda: (perturb(edvr.EDVR(**edvr_l)), ours.EDVR(**edvr_l), (rand(1, 5, 3, 32, 32),))),
        ("BasicVSR", lambda: (bvsr.BasicVSR(64, 30), ours.BasicVSR(64, 30), (rand(1, 4, 3, 64, 64),))),
        (
            "IconVSR",
            lambda: (
                perturb(bvsr.IconVSR(64, 30, keyframe_stride=5, temporal_padding=2)),
                ours.IconVSR(64, 30, keyframe_stride=5, temporal_padding=2),
                (rand(1, 6, 3, 64, 64),),
            ),
        ),
        (
            "BasicVSR++",
            lambda: (
                perturb(with_cuda_reported(bvsrpp.BasicVSRPlusPlus, 64, 7, 10, is_low_res_input=True)),
                ours.BasicVSRPlusPlus(64, 7, 10, is_low_res_input=True),
                (rand(1, 4, 3, 64, 64),),
            ),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basicsr", required=True, type=Path, help="BasicSR source checkout")
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, build in cases(args.basicsr):
        if args.only and name not in args.only:
            continue
        ref, ours, inputs = build()
        res = compare(ref, ours, inputs)
        rows.append((name, res))
        print(
            f"{name:22s} params BasicSR {res['params_ref']:>10,d} vsrlab {res['params_ours']:>10,d}  "
            f"max |diff| {res['max_abs_diff']:.2e} (output mean |y| {res['ref_abs_mean']:.3f})",
            flush=True,
        )
    if args.out:
        lines = [
            "| model | params (BasicSR) | params (vsrlab) | max abs output diff |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {n} | {r['params_ref']:,d} | {r['params_ours']:,d} | {r['max_abs_diff']:.1e} |"
            for n, r in rows
        ]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
