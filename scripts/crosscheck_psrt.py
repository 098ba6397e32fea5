"""Cross-check vsrlab's PSRT-recurrent and patch alignment against the official release.

Imports ``archs/psrt_recurrent_arch.py`` and ``archs/psrt_sliding_arch.py`` from a checkout of
XPixelGroup/RethinkVSRAlignment (``--psrt``) at run time, with their BasicSR imports served from
a BasicSR checkout (``--basicsr``, as ``scripts/crosscheck_basicsr.py`` does) and ``timm``'s
``trunc_normal_`` replaced by PyTorch's. The official class builds its branches only when CUDA
is available, so it is built while torch reports CUDA. Then:

- ``flow_warp_avg_patch`` against :func:`vsrlab.ops.patch_align` on random features and flows
  (frame sizes that are and are not multiples of 8; flows whose patch means avoid .5 px);
- ``BasicRecurrentSwin`` against :class:`vsrlab.archs.PSRTRecurrent` in the official
  configuration: parameter counts, state-dict keys, and outputs on a ``(1, 3, 3, 64, 64)`` clip
  in eval mode after loading the official model's random weights strictly.

    python scripts/crosscheck_psrt.py --psrt path/to/RethinkVSRAlignment --basicsr path/to/BasicSR \
        [--out table.md]

Nothing of either repository is copied into vsrlab.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crosscheck_basicsr import _module, import_basicsr_archs, num_params, with_cuda_reported  # noqa: E402

OFFICIAL = dict(
    mid_channels=64,
    embed_dim=120,
    depths=[6, 6, 6],
    num_heads=[6, 6, 6],
    window_size=[3, 8, 8],
    num_frames=3,
    img_size=64,
    patch_size=1,
    cpu_cache_length=100,
    is_low_res_input=True,
)


def import_psrt(psrt_root: Path, basicsr_root: Path) -> Any:
    """The official ``psrt_recurrent_arch`` module (with ``psrt_sliding_arch`` beside it)."""
    import_basicsr_archs(basicsr_root, ["spynet_arch", "basicvsr_arch"])
    layers = _module("timm.models.layers", trunc_normal_=torch.nn.init.trunc_normal_)
    _module("timm", __path__=[], models=_module("timm.models", __path__=[], layers=layers))
    arch_dir = psrt_root / "archs"
    if not (arch_dir / "psrt_recurrent_arch.py").is_file():
        raise FileNotFoundError(
            f"{arch_dir / 'psrt_recurrent_arch.py'} not found: --psrt must be the release"
        )
    _module("psrt_archs", __path__=[str(arch_dir)])
    for name in ("psrt_sliding_arch", "psrt_recurrent_arch"):
        spec = importlib.util.spec_from_file_location(f"psrt_archs.{name}", arch_dir / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"psrt_archs.{name}"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["psrt_archs.psrt_recurrent_arch"]


def patch_flow(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """A random flow whose 8x8 patch means are at least 0.1 px away from a half pixel (the
    reference rounds exact halves either way): patches too close are moved by 0.25 px."""
    from vsrlab.ops.patch_align import patch_mean_flow

    flow = torch.randn(*shape, generator=generator, dtype=torch.float64) * 3
    for _ in range(100):
        near_half = ((patch_mean_flow(flow, 8).remainder(1.0) - 0.5).abs() < 0.1).double()
        if not near_half.any():
            return flow.float()
        flow = flow + 0.25 * near_half
    raise RuntimeError("could not move the patch means away from half pixels")


def check_patch_align(official: Any) -> list[tuple[str, float]]:
    from vsrlab.ops import patch_align

    g = torch.Generator().manual_seed(0)
    rows = []
    for h, w in ((64, 64), (60, 44), (37, 51)):
        x = torch.rand(2, 5, h, w, generator=g)
        flow = patch_flow((2, 2, h, w), g)
        ref = official.flow_warp_avg_patch(x, flow)
        diff = float((ref - patch_align(x, flow, 8)).abs().max())
        rows.append((f"patch_align {h}x{w} (nearest)", diff))
        ref = official.flow_warp_avg_patch(x, flow, interpolation="bilinear")
        diff = float((ref - patch_align(x, flow, 8, interpolation="bilinear")).abs().max())
        rows.append((f"patch_align {h}x{w} (bilinear)", diff))
    return rows


def check_psrt(official: Any) -> dict[str, Any]:
    from vsrlab.archs import PSRTRecurrent, load_pretrained

    torch.manual_seed(0)
    ref = with_cuda_reported(official.BasicRecurrentSwin, **OFFICIAL)
    ours = PSRTRecurrent(**OFFICIAL)
    ref_keys, our_keys = list(ref.state_dict()), list(ours.state_dict())
    load_pretrained(ours, {"params": ref.state_dict()}, strict=True)
    ref.eval(), ours.eval()
    lqs = torch.rand(1, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ref(lqs), ours(lqs)
    return {
        "params_ref": num_params(ref),
        "params_ours": num_params(ours),
        "same_keys": ref_keys == our_keys,
        "max_abs_diff": float((a - b).abs().max()),
        "ref_abs_mean": float(a.abs().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--psrt", required=True, type=Path, help="RethinkVSRAlignment checkout")
    parser.add_argument("--basicsr", required=True, type=Path, help="BasicSR source checkout")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    official = import_psrt(args.psrt, args.basicsr)
    lines = ["| check | official | vsrlab | max abs diff |", "| --- | ---: | ---: | ---: |"]
    for name, diff in check_patch_align(official):
        print(f"{name:36s} max |diff| {diff:.2e}", flush=True)
        lines.append(f"| {name} | | | {diff:.1e} |")
    res = check_psrt(official)
    print(
        f"PSRT-recurrent params official {res['params_ref']:,d} vsrlab {res['params_ours']:,d}, "
        f"same keys in order: {res['same_keys']}, max |diff| {res['max_abs_diff']:.2e} "
        f"(output mean |y| {res['ref_abs_mean']:.3f})",
        flush=True,
    )
    lines.append(
        f"| PSRT-recurrent (1, 3, 3, 64, 64), eval; same keys: {res['same_keys']} | "
        f"{res['params_ref']:,d} | {res['params_ours']:,d} | {res['max_abs_diff']:.1e} |"
    )
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
