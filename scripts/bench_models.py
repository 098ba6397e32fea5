#!/usr/bin/env python
"""Benchmark training and inference of vsrlab's models against the reference implementations.

One run measures, side by side:

1. **Training step** (forward + Charbonnier loss + backward + Adam step): clips/s and peak memory of
   EDVR-M, BasicVSR++, the VSR Transformer, PSRT-recurrent and DKSAN, each as vsrlab float32,
   bf16 autocast (as Lightning's ``bf16-mixed``), compiled (``torch.compile``; compile time
   reported apart), with activation checkpointing, optionally channels_last
   (:func:`vsrlab.models.speed.apply_speed_options`), and the reference implementation where
   one exists: BasicSR's ``EDVR`` and ``BasicVSRPlusPlus`` (``--basicsr``), RethinkVSRAlignment's
   ``BasicRecurrentSwin`` (``--psrt``, with ``--basicsr``), imported at run time from source
   checkouts as ``scripts/crosscheck_basicsr.py`` and ``scripts/crosscheck_psrt.py`` do.
2. **Inference**: frames/s and peak memory of vsrlab-infer's streaming path
   (:func:`vsrlab.inference.stream.super_resolve_stream`) against the clip length, and of
   whole-clip inference (``VSRModule.predict_clip``), for EDVR-M and BasicVSR++.
3. **Alignment op**: vsrlab's decomposed ``deform_conv2d`` (modulated, G=8, N=9, 64 channels),
   forward + backward, against torchvision's kernel (when importable) and a dense 3x3 convolution
   (``run_case`` of ``scripts/bench_align.py``).

Every case runs in a fresh process (``--timeout`` seconds at most; on CPU its memory is capped at
``--max-memory-gb``). Peak memory is the growth over the state before the measured call: on CUDA
``torch.cuda.max_memory_allocated``, on CPU the peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` after returning freed memory with ``malloc_trim``). Times are medians
over repeats, after warm-up; CUDA is synchronised around every timed region. Shapes are the
recipes' (``conf/experiment``) on CUDA and scaled down on CPU; the tables state every shape.
``torch.compile`` keeps its caches in a directory of the benchmark's own (``--cold-compile``: fresh
ones for every row); the table says whether a row's compile found them warm.
Writes the section "Models: training and inference" of docs/benchmarks.md (``--out``).

    python scripts/bench_models.py --basicsr path/to/BasicSR --psrt path/to/RethinkVSRAlignment
    python scripts/bench_models.py --device cuda --basicsr ... --psrt ...
    python scripts/bench_models.py --quick --only edvr_m --no-compile --out /tmp/bench.md

Nothing of BasicSR or RethinkVSRAlignment is copied into vsrlab; without the checkouts the
reference rows say that they were not measured.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime
import gc
import getpass
import inspect
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from benchlib import write_section  # noqa: E402

SECTION = "## Models: training and inference"
RESULT = "BENCH_MODELS_RESULT "  # prefix of a worker's result line


# --------------------------------------------------------------------------- what is measured
@dataclass(frozen=True)
class Setup:
    """A training shape: ``batch`` clips of ``frames`` LR frames of ``size`` x ``size``, and the
    architecture keys changed from the recipe's (``arch``, e.g. fewer blocks on CPU)."""

    batch: int
    frames: int
    size: int
    arch: dict[str, Any] = field(default_factory=dict)

    def describe(self, scale: int) -> str:
        hr = self.size * scale
        return f"batch {self.batch} x {self.frames} frames x {self.size}x{self.size} LR (-> {hr}x{hr})"


@dataclass(frozen=True)
class ArchSpec:
    label: str
    conf: str  # conf/arch/<conf>.yaml
    recipe: str  # conf/experiment/<recipe>.yaml
    recurrent: bool
    scale: int
    cuda: Setup  # the recipe's training shape, per GPU
    cpu: Setup
    quick: Setup
    recipe_arch: dict[str, Any] = field(default_factory=dict)  # arch keys the recipe sets
    reference: tuple[str, str, str] | None = None  # (source, module, class)
    # vsrlab keys that the reference has no argument for, at the value it hard-codes
    reference_fixed: dict[str, Any] = field(default_factory=dict)
    reference_note: str = ""
    note: str = ""


ARCHS: dict[str, ArchSpec] = {
    "edvr_m": ArchSpec(
        "EDVR-M",
        "edvr",
        "edvr_m",
        recurrent=False,
        scale=4,
        cuda=Setup(4, 5, 64),
        cpu=Setup(1, 5, 32),
        quick=Setup(1, 5, 16),
        reference=("basicsr", "edvr_arch", "EDVR"),
        reference_fixed={"align_type": "dcn", "num_offsets": 9, "modulated": True, "upscale": 4},
    ),
    "basicvsr_pp": ArchSpec(
        "BasicVSR++",
        "basicvsr_pp",
        "basicvsr_pp",
        recurrent=True,
        scale=4,
        cuda=Setup(1, 30, 64),
        cpu=Setup(1, 3, 64),
        quick=Setup(1, 2, 64, {"num_blocks": 1}),
        reference=("basicsr", "basicvsrpp_arch", "BasicVSRPlusPlus"),
        reference_fixed={"deformable_groups": 16},
    ),
    "vsr_transformer": ArchSpec(
        "VSR Transformer",
        "vsr_transformer",
        "vsr_transformer",
        recurrent=False,
        scale=4,
        cuda=Setup(1, 5, 64),
        cpu=Setup(1, 5, 16),
        quick=Setup(1, 5, 8, {"depths": [1, 1], "num_heads": [6, 6]}),
        recipe_arch={"alignment": "none"},
        note="the recipe's default row, vsrt_alignment=none (no published implementation)",
    ),
    "psrt_recurrent": ArchSpec(
        "PSRT-recurrent",
        "psrt_recurrent",
        "psrt_recurrent",
        recurrent=True,
        scale=4,
        cuda=Setup(1, 16, 64),
        cpu=Setup(1, 2, 64, {"depths": [1, 1, 1]}),
        quick=Setup(1, 2, 64, {"depths": [1], "num_heads": [6]}),
        reference=("psrt", "psrt_recurrent_arch", "BasicRecurrentSwin"),
        reference_note="the release hard-codes activation checkpointing: compare with vsrlab checkpointing",
        note="the recipe trains with checkpointing (`arch.use_checkpoint: true`): the checkpointing row",
    ),
    "dksan": ArchSpec(
        "DKSAN",
        "dksan",
        "dksan",
        recurrent=False,
        scale=16,
        cuda=Setup(4, 7, 32),
        cpu=Setup(1, 7, 8),
        quick=Setup(1, 7, 4, {"rcab_per_level": [1, 1, 1, 1], "num_extract_block": 1}),
        note="batch 4 per GPU: the paper's 16 on 4 GPUs",
    ),
}

VARIANTS = ["float32", "bf16", "compiled", "checkpointing", "channels_last", "reference"]
VARIANT_LABELS = {
    "float32": "vsrlab float32",
    "bf16": "vsrlab bf16 autocast",
    "compiled": "vsrlab compiled",
    "checkpointing": "vsrlab checkpointing",
    "channels_last": "vsrlab channels_last",
}
REFERENCE_SOURCES = {"basicsr": "BasicSR", "psrt": "RethinkVSRAlignment"}

INFER_ARCHS = ["edvr_m", "basicvsr_pp"]  # one sliding-window net, one recurrent net
# clip lengths, frames per chunk and LR frame size per arch, per mode
INFER = {
    "cuda": {
        "lengths": [16, 32, 64, 128],
        "chunk": 16,
        "size": {"edvr_m": (180, 320), "basicvsr_pp": (180, 320)},
    },
    "cpu": {"lengths": [8, 16, 32, 64], "chunk": 8, "size": {"edvr_m": (32, 32), "basicvsr_pp": (64, 64)}},
    "quick": {"lengths": [4, 8], "chunk": 2, "size": {"edvr_m": (16, 16), "basicvsr_pp": (64, 64)}},
}
INFER_WARMUP_FRAMES = 3  # the shortest clip that EDVR-M's 5-frame windows (reflection padding) fit
INFER_ARCH_QUICK = {"basicvsr_pp": {"num_blocks": 1}}

ALIGN_IMPLS = ["deform_conv2d", "torchvision", "dense_conv"]
ALIGN_LABELS = {
    "deform_conv2d": "vsrlab deform_conv2d (decomposed)",
    "torchvision": "torchvision deform_conv2d",
    "dense_conv": "dense 3x3 conv2d",
}
ALIGN_SHAPE = {"cuda": (4, 64), "cpu": (4, 64), "quick": (1, 16)}  # (batch, size)


def tier(device: str, quick: bool) -> str:
    return "quick" if quick else ("cuda" if device.startswith("cuda") else "cpu")


def arch_config(key: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture of ``key``'s recipe (``conf/arch`` + the recipe's arch keys) with ``changes``."""
    from omegaconf import OmegaConf

    spec = ARCHS[key]
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "arch" / f"{spec.conf}.yaml"), resolve=True)
    cfg.update(spec.recipe_arch)
    cfg.update(changes or {})
    return cfg


# --------------------------------------------------------------------------- memory and timing
def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    """Return freed heap memory to the system and reset the peak resident set to the current one."""
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn: Callable[[], Any], dev: torch.device) -> float:
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def measured(fn: Callable[[], Any], dev: torch.device) -> tuple[float, float, bool]:
    """(seconds, peak MB over the state before the call, whether the peak was reset) of ``fn()``."""
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
        seconds = timed(fn, dev)
        return seconds, (torch.cuda.max_memory_allocated(dev) - start) / 2**20, True
    reset = _reset_peak_rss()
    base = _status_mb("VmRSS")
    seconds = timed(fn, dev)
    return seconds, _status_mb("VmHWM") - base, reset


def _process_setup(job: dict[str, Any]) -> torch.device:
    dev = torch.device(job["device"])
    if dev.type == "cpu" and job.get("malloc_cache", True):
        from vsrlab.utils.system import keep_freed_memory

        keep_freed_memory()  # what vsrlab-train and vsrlab-infer do (extras.cpu_malloc_cache)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # trainer=gpu
    torch.manual_seed(0)
    return dev


# --------------------------------------------------------------------------- training
def build_reference(key: str, cfg: dict[str, Any], basicsr: str | None, psrt: str | None) -> tuple[Any, str]:
    """The reference network of ``key`` with ``cfg``'s arguments, and how its DCN runs."""
    from crosscheck_basicsr import import_basicsr_archs, with_cuda_reported

    spec = ARCHS[key]
    source, module, cls_name = spec.reference
    for k, v in spec.reference_fixed.items():
        if cfg.get(k) != v:
            raise ValueError(f"{spec.label}: the reference has {k}={v!r} built in, the config {cfg.get(k)!r}")
    dcn = ""
    if source == "basicsr":
        real = torchvision_available()
        mods = import_basicsr_archs(basicsr, [module], real_torchvision=real)
        dcn = "torchvision's deform_conv2d" if real else "vsrlab's deform_conv2d (no torchvision here)"
    else:
        from crosscheck_psrt import import_psrt

        mods = {module: import_psrt(Path(psrt), Path(basicsr))}
    cls = getattr(mods[module], cls_name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in cfg.items() if k in params}
    return with_cuda_reported(cls, **kwargs), dcn


def torchvision_available() -> bool:
    from bench_align import torchvision_available as available

    return available()


def train_case(job: dict[str, Any]) -> dict[str, Any]:
    """Clips/s and peak memory of training steps of one architecture and variant."""
    from vsrlab.archs.pretrained import build_arch
    from vsrlab.losses import CharbonnierLoss
    from vsrlab.models.speed import apply_speed_options

    dev = _process_setup(job)
    key, variant = job["arch"], job["variant"]
    spec, setup = ARCHS[key], Setup(**job["setup"])
    cfg = arch_config(key, setup.arch)
    out: dict[str, Any] = {}
    if variant == "reference":
        net, out["dcn"] = build_reference(key, cfg, job.get("basicsr"), job.get("psrt"))
        net = net.to(dev)
    else:
        net = build_arch(cfg, load_weights=False).to(dev)
        options = {
            "compiled": {"compile": True},
            "checkpointing": {"checkpointing": True},
            "channels_last": {"channels_last": True},
        }
        apply_speed_options(net, **options.get(variant, {}))
    net.train()
    out["params"] = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = CharbonnierLoss(eps=1e-12)
    b, t, h = setup.batch, setup.frames, setup.size
    lq = torch.rand(b, t, 3, h, h, device=dev)
    s = spec.scale
    gt = torch.rand(*((b, t) if spec.recurrent else (b,)), 3, h * s, h * s, device=dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if variant == "bf16" else nullcontext()

    def step() -> None:
        with autocast:
            loss = loss_fn(net(lq), gt)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    first = [timed(step, dev) for _ in range(job["warmup"])]
    _, out["peak_mb"], out["peak_reset"] = measured(step, dev)
    times = [timed(step, dev) for _ in range(job["repeats"])]
    out["step_s"] = statistics.median(times)
    out["clips_per_s"] = b / out["step_s"]
    out["first_step_s"] = first[0]
    if variant == "compiled":
        from torch._dynamo.utils import counters

        out["compile_s"] = max(first[0] - out["step_s"], 0.0)
        hits, misses = (counters["inductor"][f"fxgraph_cache_{k}"] for k in ("hit", "miss"))
        out["compile_cache"] = (
            "warm" if hits and not misses else "cold" if misses and not hits else "part warm"
        )
    return out


# --------------------------------------------------------------------------- inference
def synthetic_frames(length: int, height: int, width: int) -> Iterator[Any]:
    """A synthetic LR video, ``(h, w, 3)`` uint8 frames made one at a time (a smooth pattern moving
    one pixel per frame, plus noise)."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for t in range(length):
        base = 127 + 60 * np.sin((xx + t) / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.ones(3)
        noise = rng.integers(-20, 21, (height, width, 3))
        yield np.clip(base + noise, 0, 255).astype(np.uint8)


def infer_case(job: dict[str, Any]) -> dict[str, Any]:
    """Frames/s and peak memory of vsrlab-infer's stream, or of whole-clip inference, on one clip."""
    import numpy as np

    from vsrlab.inference.stream import default_overlap, super_resolve_stream
    from vsrlab.models import VSRModule
    from vsrlab.utils.images import frames_to_tensor, to_uint8_hwc

    dev = _process_setup(job)
    model = VSRModule(arch=arch_config(job["arch"], job.get("arch_changes"))).eval().to(dev)
    overlap = default_overlap(model, 5)  # vsrlab-infer's default (recurrent_overlap=5)
    h, w = job["size"]

    def run(length: int) -> None:
        done = 0
        if job["mode"] == "stream":
            frames = synthetic_frames(length, h, w)
            for out in super_resolve_stream(model, frames, job["chunk"], overlap, 4, dev):
                done += len(to_uint8_hwc(out))
        else:
            lq = frames_to_tensor(np.stack(list(synthetic_frames(length, h, w)))).to(dev)
            with torch.inference_mode():
                done = len(to_uint8_hwc(model.predict_clip(lq)))
        if done != length:
            raise RuntimeError(f"{done} frames out of {length}")

    timed(lambda: run(INFER_WARMUP_FRAMES), dev)  # warm-up
    seconds, peak, reset = measured(lambda: run(job["length"]), dev)
    times = [seconds] + [timed(lambda: run(job["length"]), dev) for _ in range(job["repeats"] - 1)]
    return {
        "frames_per_s": job["length"] / statistics.median(times),
        "peak_mb": peak,
        "peak_reset": reset,
        "overlap": overlap,
    }


# --------------------------------------------------------------------------- alignment op
def align_case(job: dict[str, Any]) -> dict[str, Any]:
    """``bench_align.run_case`` of one implementation at G=8, N=9, 64 channels."""
    from bench_align import run_case

    _reset_peak_rss()  # run_case reads the peak resident set since then (matters in one process only)
    return run_case(
        job["impl"],
        8,
        9,
        job["device"],
        job["repeats"],
        job["measure"],
        job.get("malloc_cache", True),
        channels=64,
        size=job["size"],
        batch=job["batch"],
    )


CASES = {"train": train_case, "infer": infer_case, "align": align_case}


def run_in_process(job: dict[str, Any]) -> dict[str, Any]:
    try:
        return CASES[job["kind"]](job)
    except Exception as exc:  # a failed case is a row of the table, not the end of the run
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if isinstance(exc, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(exc):
            return {"error": "out of memory", "detail": message[:300]}
        traceback.print_exc()
        return {"error": message[:200]}


def compile_cache() -> Path:
    """The benchmark's own torch.compile caches (inductor's and triton's), kept between runs: a case
    ended mid-compile can leave an empty kernel library there that inductor would load as built, so
    the caches of training runs are not shared."""
    return Path(tempfile.gettempdir()) / f"vsrlab_bench_models_{getpass.getuser()}"


def drop_unfinished_builds(cache: Path, since: float) -> list[Path]:
    """Remove the empty shared libraries that a killed compile left in ``cache`` after ``since``."""
    dropped = []
    for path in cache.rglob("*.so"):
        try:
            if path.stat().st_size == 0 and path.stat().st_mtime >= since - 1:
                path.unlink()
                dropped.append(path)
        except OSError:
            pass
    return dropped


def run_job(job: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run ``job`` in a fresh process (or in this one with ``--in-process``)."""
    if args.in_process:
        return run_in_process(job)
    cap = int(args.max_memory_gb * 2**30) if args.max_memory_gb and job["device"] == "cpu" else 0

    def limit() -> None:
        if cap:
            resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))

    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        cache = Path(tmp) if args.cold_compile else compile_cache()
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
        env["TRITON_CACHE_DIR"] = str(cache / "triton")
        started = time.time()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its compile workers too are ended on a timeout
            preexec_fn=limit,
        )
        try:
            stdout, stderr = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            drop_unfinished_builds(cache, started)
            return {"error": f"timed out after {args.timeout:g} s"}
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or [f"exit status {proc.returncode}"]
    if proc.returncode < 0:
        return {"error": f"killed by signal {-proc.returncode}" + (" (out of memory?)" if cap else "")}
    return {"error": last[0][:200]}


# --------------------------------------------------------------------------- plan
def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    level = tier(args.device, args.quick)
    common = {"device": args.device, "malloc_cache": args.malloc_cache}
    jobs: list[dict[str, Any]] = []
    if "train" in args.parts:
        for key in args.only:
            spec = ARCHS[key]
            setup = getattr(spec, level)
            for variant in VARIANTS:
                if args.variants and variant not in args.variants:
                    continue
                if variant == "compiled" and not args.compile:
                    continue
                if variant == "channels_last" and not args.channels_last:
                    continue
                if variant == "reference" and (spec.reference is None or reference_missing(spec, args)):
                    continue
                jobs.append(
                    {
                        **common,
                        "kind": "train",
                        "arch": key,
                        "variant": variant,
                        "setup": asdict(setup),
                        "warmup": args.warmup,
                        "repeats": args.repeats,
                        "basicsr": str(args.basicsr) if args.basicsr else None,
                        "psrt": str(args.psrt) if args.psrt else None,
                    }
                )
    if "infer" in args.parts:
        infer = INFER[level]
        for key in [k for k in INFER_ARCHS if k in args.only]:
            for mode in ("stream", "whole"):
                for length in infer["lengths"]:
                    jobs.append(
                        {
                            **common,
                            "kind": "infer",
                            "arch": key,
                            "mode": mode,
                            "length": length,
                            "chunk": infer["chunk"],
                            "size": infer["size"][key],
                            "repeats": args.infer_repeats,
                            "arch_changes": INFER_ARCH_QUICK.get(key, {}) if args.quick else {},
                        }
                    )
    if "align" in args.parts:
        batch, size = ALIGN_SHAPE[level]
        for impl in ALIGN_IMPLS:
            if impl == "torchvision" and not torchvision_available():
                continue
            for measure in ("memory", "time"):  # bench_align's protocol: one process each
                jobs.append(
                    {
                        **common,
                        "kind": "align",
                        "impl": impl,
                        "measure": measure,
                        "batch": batch,
                        "size": size,
                        "repeats": max(args.repeats, 3),
                    }
                )
    return jobs


def reference_missing(spec: ArchSpec, args: argparse.Namespace) -> str:
    """Why the reference of ``spec`` cannot be measured ('' when it can)."""
    if spec.reference is None:
        return "no reference"
    if spec.reference[0] == "basicsr" and not args.basicsr:
        return "not measured: no --basicsr"
    if spec.reference[0] == "psrt" and not (args.psrt and args.basicsr):
        return "not measured: needs --psrt and --basicsr"
    return ""


def job_label(job: dict[str, Any]) -> str:
    if job["kind"] == "train":
        return f"train {ARCHS[job['arch']].label} {job['variant']}"
    if job["kind"] == "infer":
        return f"infer {ARCHS[job['arch']].label} {job['mode']} {job['length']} frames"
    return f"align {job['impl']} ({job['measure']})"


# --------------------------------------------------------------------------- tables
def sig(x: float) -> str:
    """4 significant digits, no exponent."""
    if x == 0:
        return "0"
    digits = max(0, 3 - int(f"{abs(x):e}".split("e")[1]))
    return f"{x:.{digits}f}"


def ratio(a: str, b: str) -> str:
    """``a / b`` of two numbers as printed in the table (so that the column can be checked)."""
    try:
        return f"{float(a) / float(b):.2f}x"
    except (ValueError, ZeroDivisionError):
        return ""


def peak_cell(row: dict[str, Any]) -> str:
    return f"{row['peak_mb']:.0f}" + ("" if row.get("peak_reset", True) else " (upper bound)")


def reference_label(spec: ArchSpec) -> str:
    source, _, cls = spec.reference
    return f"{REFERENCE_SOURCES[source]} {cls} (reference)"


def render_training(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    level = tier(args.device, args.quick)
    lines = [
        "### Training step",
        "",
        "Forward + Charbonnier loss + backward + Adam step on random clips, one fresh process per row: "
        f"{args.warmup} warm-up step(s), then one step for the peak memory, then the median of "
        f"{args.repeats} timed steps. Peak MB: growth over the state before that step (weights and Adam "
        "state excluded; activations, gradients and temporaries included). compile s: the first step's "
        "time less a compiled step's (dynamo + inductor; "
        + (
            "fresh caches for every row, `--cold-compile`"
            if args.cold_compile
            else f"the benchmark's caches in {compile_cache()}: warm where an earlier run compiled the same"
        )
        + "; cold/warm: inductor's graph cache missed/hit"
        + "). `vs vsrlab float32` and `vs reference` divide the row's clips/s by that row's.",
        "",
        "| architecture | recipe shape (per GPU) | shape measured | model changes |",
        "| --- | --- | --- | --- |",
    ]
    for key in args.only:
        spec = ARCHS[key]
        used = getattr(spec, level)
        changes = ", ".join(f"{k}={v}" for k, v in used.arch.items()) or "none (full size)"
        notes = "; ".join(n for n in (spec.note,) if n)
        lines.append(
            f"| {spec.label} | {spec.cuda.describe(spec.scale)} | {used.describe(spec.scale)} | {changes}"
            + (f"; {notes}" if notes else "")
            + " |"
        )
    lines += [
        "",
        "| architecture | implementation | clips/s | vs vsrlab float32 | vs reference | peak MB "
        "| compile s | params |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in args.only:
        spec = ARCHS[key]
        mine = {r["variant"]: r for r in rows if r["arch"] == key}
        shown = [v for v in VARIANTS if v in mine]
        base = mine.get("float32", {}).get("clips")
        ref = mine.get("reference", {}).get("clips") if "reference" in mine else None
        missing = reference_missing(spec, args)
        for variant in shown:
            r = mine[variant]
            name = reference_label(spec) if variant == "reference" else VARIANT_LABELS[variant]
            if "error" in r:
                lines.append(f"| {spec.label} | {name} | {r['error']} | | | | | |")
                continue
            vs_ref = ratio(r["clips"], ref) if ref else (missing or "reference failed")
            peak = peak_cell(r)
            compile_s = f"{r['compile_s']:.1f} ({r.get('compile_cache', '?')})" if "compile_s" in r else ""
            lines.append(
                f"| {spec.label} | {name} | {r['clips']} | {ratio(r['clips'], base) if base else ''} | "
                f"{vs_ref} | {peak} | {compile_s} | {r['params'] / 1e6:.2f}M |"
            )
        if spec.reference is not None and "reference" not in mine:
            lines.append(f"| {spec.label} | {reference_label(spec)} | {missing} | | | | | |")
    notes = []
    for key in args.only:
        spec = ARCHS[key]
        ref_row = next((r for r in rows if r["arch"] == key and r["variant"] == "reference"), None)
        if ref_row and ref_row.get("dcn"):
            notes.append(f"{spec.label} reference: its DCN runs {ref_row['dcn']}.")
        if spec.reference_note and ref_row:
            notes.append(f"{spec.label} reference: {spec.reference_note}.")
    if notes:
        lines += ["", " ".join(notes)]
    return lines


def render_inference(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    infer = INFER[tier(args.device, args.quick)]
    keys = [k for k in INFER_ARCHS if k in args.only]
    overlaps = {r["arch"]: r.get("overlap") for r in rows if "overlap" in r}
    sizes = ", ".join(f"{ARCHS[k].label} {infer['size'][k][0]}x{infer['size'][k][1]}" for k in keys)
    lines = [
        "### Inference",
        "",
        "vsrlab-infer's streaming path (`super_resolve_stream`, frames_per_chunk "
        f"{infer['chunk']}, overlap "
        + ", ".join(f"{ARCHS[k].label} {overlaps.get(k, '?')}" for k in keys)
        + ", uint8 output frames) against whole-clip inference (`VSRModule.predict_clip` of the whole "
        f"clip, uint8 output) on a synthetic LR video ({sizes}, x4), one fresh process per cell, after "
        f"a {INFER_WARMUP_FRAMES}-frame warm-up; frames/s: median of {args.infer_repeats} run(s). Peak "
        "MB: growth over the loaded model (input frames, features and output frames included).",
        "",
        "| architecture | clip frames | stream frames/s | stream peak MB | whole-clip frames/s "
        "| whole-clip peak MB | stream time vs whole |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in keys:
        for length in infer["lengths"]:
            cells = []
            fps = {}
            for mode in ("stream", "whole"):
                r = next(
                    (r for r in rows if r["arch"] == key and r["mode"] == mode and r["length"] == length), {}
                )
                if "error" in r or not r:
                    cells += [r.get("error", "not run"), ""]
                    continue
                fps[mode] = sig(r["frames_per_s"])
                cells += [fps[mode], peak_cell(r)]
            rel = ratio(fps["whole"], fps["stream"]) if len(fps) == 2 else ""
            lines.append(f"| {ARCHS[key].label} | {length} | " + " | ".join(cells) + f" | {rel} |")
    return lines


def render_align(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    batch, size = ALIGN_SHAPE[tier(args.device, args.quick)]
    lines = [
        "### Alignment op",
        "",
        f"Forward + backward of a modulated deformable convolution, G=8 offset groups x N=9 offsets, 64 "
        f"channels, {size}x{size}, batch {batch} (`run_case` of scripts/bench_align.py: one process for the "
        "memory, one for the median time), against a dense 3x3 `conv2d` of the same shape"
        + ("" if torchvision_available() else "; torchvision is not importable here: not measured")
        + ".",
        "",
        "| implementation | fwd+bwd ms | vs vsrlab deform_conv2d | peak MB |",
        "| --- | ---: | ---: | ---: |",
    ]
    ms = {}
    for impl in ALIGN_IMPLS:
        mine = {r["measure"]: r for r in rows if r["impl"] == impl}
        if mine:
            ms[impl] = sig(mine["time"]["ms"]) if "ms" in mine.get("time", {}) else None
    for impl in ALIGN_IMPLS:
        mine = {r["measure"]: r for r in rows if r["impl"] == impl}
        if not mine:
            continue
        err = next((r["error"] for r in mine.values() if "error" in r), None)
        if err:
            lines.append(f"| {ALIGN_LABELS[impl]} | {err} | | |")
            continue
        rel = ratio(ms[impl], ms["deform_conv2d"]) if ms.get("deform_conv2d") else ""
        lines.append(f"| {ALIGN_LABELS[impl]} | {ms[impl]} | {rel} | {mine['memory']['peak_mb']:.0f} |")
    return lines


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu ({name})"


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
        f"Device {hardware(args.device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; whole run {wall / 60:.1f} min. "
        f"Shapes: {scaling}. Peak memory: {memory}"
        + (f"; per-process cap {args.max_memory_gb:.1f} GB" if args.max_memory_gb and level != "cuda" else "")
        + f"; per-case timeout {args.timeout:g} s. References: "
        + (", ".join(sources) if sources else "none given")
        + ". Written by `"
        + shlex.join(["python", "scripts/bench_models.py", *args.argv])
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
        parts.append(render_training(by_kind["train"], args))
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
