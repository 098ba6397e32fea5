"""Benchmark training and inference of vsrlab's models against the reference implementations.

One run measures, side by side (one module per job):

1. **Training step** (:mod:`scripts.bench.models_train`; forward + Charbonnier loss + backward + Adam
   step): clips/s and peak memory of EDVR-M, BasicVSR++, the VSR Transformer, PSRT-recurrent and
   DKSAN, each as vsrlab float32, bf16 autocast (as Lightning's ``bf16-mixed``), compiled
   (``torch.compile``; compile time reported apart), with activation checkpointing, optionally
   channels_last (:func:`vsrlab.models.speed.apply_speed_options`), and the reference implementation
   where one exists: BasicSR's ``EDVR`` and ``BasicVSRPlusPlus`` (``--basicsr``),
   RethinkVSRAlignment's ``BasicRecurrentSwin`` (``--psrt``, with ``--basicsr``), imported at run time
   from source checkouts as ``scripts/crosscheck_basicsr.py`` and ``scripts/crosscheck_psrt.py`` do.
   Every row shows the CPU's bf16 / AVX-512 / AMX capability beside its precision.
2. **Inference** (:mod:`scripts.bench.models_infer`): frames/s and peak memory of vsrlab-infer's
   streaming path (:func:`vsrlab.inference.stream.super_resolve_stream`) against the clip length,
   and of whole-clip inference (``VSRModule.predict_clip``), for EDVR-M and BasicVSR++.
3. **Alignment op** (:mod:`scripts.bench.models_align`): vsrlab's decomposed ``deform_conv2d``
   (modulated, G=8, N=9, 64 channels), forward + backward, against torchvision's kernel (when
   importable) and a dense 3x3 convolution (``run_case`` of :mod:`scripts.bench.align`).

Every case runs in a fresh process (:mod:`scripts.bench.models_run`; ``--timeout`` seconds at most; on
CPU its memory is capped at ``--max-memory-gb``). Peak memory is the growth over the state before the
measured call: on CUDA ``torch.cuda.max_memory_allocated``, on CPU the peak resident set (``VmHWM``,
reset through ``/proc/self/clear_refs`` after returning freed memory with ``malloc_trim``;
:mod:`scripts.bench.common`). Times are medians over repeats, after warm-up; CUDA is synchronised
around every timed region. Shapes are the recipes' (``conf/experiment``) on CUDA and scaled down on
CPU (:mod:`scripts.bench.models_spec`); the tables state every shape. ``torch.compile`` keeps its
caches in a directory of the benchmark's own (``--cold-compile``: fresh ones for every row); the table
says whether a row's compile found them warm.
Writes the section "Models: training and inference" of docs/benchmarks.md (``--out``).

    python -m scripts.bench.models --basicsr path/to/BasicSR --psrt path/to/RethinkVSRAlignment
    python -m scripts.bench.models --device cuda --basicsr ... --psrt ...
    python -m scripts.bench.models --quick --only edvr_m --no-compile --out /tmp/bench.md

Nothing of BasicSR or RethinkVSRAlignment is copied into vsrlab; without the checkouts the
reference rows say that they were not measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import ROOT, describe, hardware, sig, write_section
from .models_align import render_align
from .models_infer import render_inference
from .models_run import RESULT, job_label, plan, run_in_process, run_job
from .models_spec import ARCHS, INFER_ARCHS, MODULE, SECTION, VARIANTS, tier
from .models_train import render_training


def source_version(path: Path | None) -> str:
    if not path:
        return ""
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def render(
    results: list[tuple[dict[str, Any], dict[str, Any]]], args: argparse.Namespace, wall: float
) -> str:
    level = tier(args.device, args.quick)
    hw = hardware(args.device)
    sources = []
    for name, path in (("BasicSR", args.basicsr), ("RethinkVSRAlignment", args.psrt)):
        if path:
            version = source_version(path)
            sources.append(f"{name} checkout" + (f" at {version}" if version else ""))
    scaling = {
        "cuda": "the recipes' training shapes (per GPU)",
        "cpu": "shapes scaled down from the recipes' (per architecture below: fewer clips, frames and "
        "pixels first; where that was not enough, fewer blocks at the full widths)",
        "quick": "`--quick`: tiny shapes and models, for tests; not representative",
    }[level]
    memory = (
        "`torch.cuda.max_memory_allocated`"
        if args.device.startswith("cuda")
        else "peak resident set (VmHWM) after `malloc_trim` and a reset through /proc/self/clear_refs"
        + (
            ", glibc keeping freed memory as vsrlab-train and vsrlab-infer do (`extras.cpu_malloc_cache`)"
            if args.malloc_cache
            else ", glibc defaults (`--no-malloc-cache`)"
        )
    )
    header = [
        SECTION,
        "",
        f"Device {args.device} ({describe(hw)}), torch {hw['torch']}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; whole run {wall / 60:.1f} min. "
        f"Shapes: {scaling}. Peak memory: {memory}"
        + (f"; per-process cap {args.max_memory_gb:.1f} GB" if args.max_memory_gb and level != "cuda" else "")
        + f"; per-case timeout {args.timeout:g} s. References: "
        + (", ".join(sources) if sources else "none given")
        + ". Written by `"
        + shlex.join(["python", "-m", MODULE, *args.argv])
        + "`.",
    ]
    parts: list[list[str]] = []
    by_kind: dict[str, list[dict[str, Any]]] = {"train": [], "infer": [], "align": []}
    for job, res in results:
        row = {**job, **res}
        if "clips_per_s" in res:
            row["clips"] = sig(res["clips_per_s"])
        by_kind[job["kind"]].append(row)
    if "train" in args.parts:
        parts.append(render_training(by_kind["train"], args, hw))
    if "infer" in args.parts and any(k in args.only for k in INFER_ARCHS):
        parts.append(render_inference(by_kind["infer"], args))
    if "align" in args.parts:
        parts.append(render_align(by_kind["align"], args))
    return "\n".join(header + [line for part in parts for line in ["", *part]]) + "\n"


# --------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument(
        "--basicsr", type=Path, help="BasicSR source checkout: EDVR and BasicVSR++ references"
    )
    parser.add_argument(
        "--psrt",
        type=Path,
        help="RethinkVSRAlignment checkout: PSRT-recurrent reference (needs --basicsr too)",
    )
    parser.add_argument("--only", help=f"comma-separated architectures (default all: {','.join(ARCHS)})")
    parser.add_argument(
        "--parts",
        default="train,infer,align",
        help="comma-separated parts: train, infer, align (default all)",
    )
    parser.add_argument(
        "--variants", help=f"comma-separated training rows (default all that apply: {','.join(VARIANTS)})"
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes and models, one repeat (for tests)")
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows (slow on CPU)"
    )
    parser.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile with fresh inductor/triton caches (the compile time of a first run on a machine)",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the channels_last rows (default: on CUDA only)",
    )
    parser.add_argument(
        "--warmup", type=int, help="training steps before the measured ones (default CPU 1, CUDA 3)"
    )
    parser.add_argument("--repeats", type=int, help="timed training steps per row (default CPU 3, CUDA 10)")
    parser.add_argument(
        "--infer-repeats", type=int, help="timed inference runs per cell (default CPU 1, CUDA 3)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per case before it is ended (default CPU 600, CUDA 900)"
    )
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        help="memory cap of every case's process on CPU (default 40%% of RAM; 0: none)",
    )
    parser.add_argument(
        "--no-malloc-cache",
        dest="malloc_cache",
        action="store_false",
        help="keep glibc's defaults on CPU (vsrlab-train/-infer keep freed memory: extras.cpu_malloc_cache)",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run every case in this process (tests, debugging)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="Markdown file written"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one case, print its result
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    cuda = args.device.startswith("cuda")
    only = [k.strip() for k in args.only.split(",")] if args.only else list(ARCHS)
    unknown = [k for k in only if k not in ARCHS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; choose from {list(ARCHS)}")
    args.only = only
    args.parts = [p.strip() for p in args.parts.split(",")]
    args.variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    if args.variants and set(args.variants) - set(VARIANTS):
        parser.error(f"--variants: choose from {VARIANTS}; got {args.variants}")
    if set(args.parts) - {"train", "infer", "align"}:
        parser.error(f"--parts: choose from train, infer, align; got {args.parts}")
    if args.channels_last is None:
        args.channels_last = cuda
    quick = args.quick
    args.warmup = args.warmup if args.warmup is not None else (1 if quick or not cuda else 3)
    args.repeats = args.repeats if args.repeats is not None else (1 if quick else 10 if cuda else 3)
    args.infer_repeats = args.infer_repeats or (1 if quick or not cuda else 3)
    args.timeout = args.timeout or (900.0 if cuda else 600.0)
    if args.max_memory_gb is None:
        args.max_memory_gb = 0.4 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    if args.worker:
        print(RESULT + json.dumps(run_in_process(json.loads(args.worker))), flush=True)
        return ""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    jobs = plan(args)
    results = []
    start = time.perf_counter()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns) as progress:
        task = progress.add_task(f"bench_models on {args.device}", total=len(jobs))
        for job in jobs:
            progress.update(task, description=job_label(job))
            t0 = time.perf_counter()
            res = run_job(job, args)
            results.append((job, res))
            shown = res.get("error") or ", ".join(
                f"{k} {v:.4g}" for k, v in res.items() if isinstance(v, float) and k != "first_step_s"
            )
            progress.console.print(f"{job_label(job)}: {shown} ({time.perf_counter() - t0:.0f} s)")
            progress.advance(task)
    text = render(results, args, time.perf_counter() - start)
    write_section(args.out, SECTION, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
