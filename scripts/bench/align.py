"""Benchmark deformable alignment: time and peak memory of forward + backward.

Compares, for G offset groups x N offsets in {(1, 1), (8, 9), (16, 25)} at 64 channels,
64x64, batch 4 (modulated, as DCNv2):

- ``deform_conv2d``      vsrlab's op (N grid_sample warps + one 1x1 convolution),
- ``DeformableAlignment`` the G x N module with given offsets (the same warps + fusion),
- ``eq1_gather``         the direct Eq. 1 implementation (explicit bilinear gathering per tap),
- ``torchvision``        ``torchvision.ops.deform_conv2d`` when it is importable.

``run_case`` also has ``dense_conv`` (a plain 3x3 ``conv2d`` of the same shape, for
``python -m scripts.bench.models``).

Every case runs in its own subprocess so that its peak memory can be measured: on CPU the
growth of the process's peak resident set over the inputs, on CUDA
``torch.cuda.max_memory_allocated`` (:func:`scripts.bench.common.measured`). Times are medians
over repeats; ratios are against the Eq. 1 reference of the same run. Writes a Markdown table to
docs/benchmarks.md (section "Deformable alignment").

    python -m scripts.bench.align                 # CPU
    python -m scripts.bench.align --device cuda   # GPU, adds torchvision's CUDA kernel
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

import torch
from rich.progress import track

from .common import (
    ROOT,
    child_env,
    describe,
    hardware,
    markdown_table,
    measured,
    module_command,
    timed,
    write_section,
)

MODULE = "scripts.bench.align"
CASES = [(1, 1), (8, 9), (16, 25)]
IMPLS = ["eq1_gather", "deform_conv2d", "DeformableAlignment", "torchvision"]
SECTION = "## Deformable alignment"


def run_case(
    impl: str,
    groups: int,
    n: int,
    device: str,
    repeats: int,
    measure: str,
    malloc_cache: bool,
    channels: int = 64,
    size: int = 64,
    batch: int = 4,
) -> dict:
    """Peak memory (``measure='memory'``) or median time (``'time'``) of one implementation, in a
    fresh process: peak RSS only tracks live tensors while glibc returns freed memory, so memory is
    measured with glibc's defaults and time with the allocator setting under test."""
    from vsrlab.ops import DeformableAlignment, deform_conv2d
    from vsrlab.ops.reference import deform_conv2d_gather
    from vsrlab.utils.system import keep_freed_memory

    if measure == "time" and malloc_cache:
        keep_freed_memory()
    torch.manual_seed(0)
    k = int(round(n**0.5))
    dev = torch.device(device)
    x = torch.randn(batch, channels, size, size, device=dev, requires_grad=True)
    offset = (torch.randn(batch, 2 * groups * n, size, size, device=dev) * 2).requires_grad_()
    mask = torch.rand(batch, groups * n, size, size, device=dev, requires_grad=True)
    if impl == "DeformableAlignment":
        module = DeformableAlignment(channels, channels, channels, groups, n).to(dev)
        fn = lambda: module.align(x, offset, mask)  # noqa: E731
    else:
        weight = torch.randn(channels, channels, k, k, device=dev, requires_grad=True)
        bias = torch.zeros(channels, device=dev, requires_grad=True)
        if impl == "torchvision":
            from torchvision.ops import deform_conv2d as op
        elif impl == "dense_conv":  # the same convolution without sampling: offsets and mask unused

            def op(x, offset, weight, bias, stride, padding, dilation, mask=None):
                return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation)

        else:
            op = {"deform_conv2d": deform_conv2d, "eq1_gather": deform_conv2d_gather}[impl]
        fn = lambda: op(x, offset, weight, bias, 1, k // 2, 1, mask=mask)  # noqa: E731

    def step() -> None:
        fn().square().mean().backward()

    if measure == "memory":
        return {"peak_mb": measured(step, dev)[1]}
    timed(step, dev)  # warm-up
    return {"ms": 1000 * statistics.median(timed(step, dev) for _ in range(repeats))}


def torchvision_available() -> bool:
    try:
        import torchvision.ops  # noqa: F401
    except Exception:
        return False
    return True


def render(rows: list[dict], device: str, note: str) -> str:
    header = ["G x N", "implementation", "fwd+bwd ms", "time vs Eq. 1", "peak MB", "memory vs Eq. 1"]
    cells = []
    for g, n in CASES:
        case = [r for r in rows if r["G"] == g and r["N"] == n]
        ref = next(r for r in case if r["impl"] == "eq1_gather")
        for r in case:
            cells.append(
                [
                    f"{g} x {n}",
                    r["impl"],
                    f"{r['ms']:.1f}",
                    f"{r['ms'] / ref['ms']:.2f}x",
                    f"{r['peak_mb']:.0f}",
                    f"{r['peak_mb'] / max(ref['peak_mb'], 1e-9):.2f}x",
                ]
            )
    return "\n".join([SECTION, "", note, "", *markdown_table(header, cells, "llrrrr")]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median reported)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--no-malloc-cache",
        dest="malloc_cache",
        action="store_false",
        help="keep glibc's default of unmapping freed large blocks (vsrlab-train keeps them, "
        "see vsrlab.utils.system.keep_freed_memory)",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()

    if args.case:
        impl, g, n, measure = args.case.split(",")
        print(
            json.dumps(run_case(impl, int(g), int(n), args.device, args.repeats, measure, args.malloc_cache))
        )
        return

    impls = [i for i in IMPLS if i != "torchvision" or torchvision_available()]
    jobs = [(impl, g, n) for g, n in CASES for impl in impls]
    rows = []
    for impl, g, n in track(jobs, description=f"benchmarking on {args.device}"):
        row = {"impl": impl, "G": g, "N": n}
        for measure in ("memory", "time"):
            cmd = module_command(
                MODULE,
                "--device",
                args.device,
                "--repeats",
                str(args.repeats),
                "--case",
                f"{impl},{g},{n},{measure}",
            ) + ([] if args.malloc_cache else ["--no-malloc-cache"])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=child_env())
            row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(row)
    note = (
        f"Forward + backward of a modulated deformable convolution, 64 channels, 64x64, batch 4, on "
        f"{args.device} ({describe(hardware(args.device))}), torch {torch.__version__}; median of "
        f"{args.repeats} repeats. Peak memory: "
        + (
            "peak RSS growth of a fresh process, with glibc defaults"
            if args.device == "cpu"
            else "max_memory_allocated"
        )
        + ". "
        f"torchvision: {'measured' if 'torchvision' in impls else 'not importable here, not measured'}. "
        f"Timed with glibc keeping freed memory (vsrlab-train's default, `extras.cpu_malloc_cache`): "
        f"{'yes' if args.malloc_cache else 'no'}, for every implementation alike. "
        "Written by `python -m scripts.bench.align"
        + (" --device cuda" if args.device != "cpu" else "")
        + ("" if args.malloc_cache else " --no-malloc-cache")
        + "`."
    )
    text = render(rows, args.device, note)
    write_section(args.output, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
