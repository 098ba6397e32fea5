"""How ``python -m scripts.bench.models`` runs its cases: the plan (one job per row or cell), and every
job in a fresh process of ``scripts.bench.models --worker`` (``--timeout`` seconds at most; on CPU its
memory is capped at ``--max-memory-gb``), or in this process with ``--in-process``."""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .align import torchvision_available
from .common import child_env, module_command
from .models_align import align_case
from .models_infer import infer_case
from .models_spec import (
    ALIGN_IMPLS,
    ALIGN_SHAPE,
    ARCHS,
    INFER,
    INFER_ARCH_QUICK,
    INFER_ARCHS,
    MODULE,
    VARIANTS,
    compile_cache,
    reference_missing,
    tier,
)
from .models_train import train_case

RESULT = "BENCH_MODELS_RESULT "  # prefix of a worker's result line
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

    env = child_env()
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        cache = Path(tmp) if args.cold_compile else compile_cache()
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
        env["TRITON_CACHE_DIR"] = str(cache / "triton")
        started = time.time()
        proc = subprocess.Popen(
            module_command(MODULE, "--worker", json.dumps(job)),
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
            for measure in ("memory", "time"):  # scripts.bench.align's protocol: one process each
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


def job_label(job: dict[str, Any]) -> str:
    if job["kind"] == "train":
        return f"train {ARCHS[job['arch']].label} {job['variant']}"
    if job["kind"] == "infer":
        return f"infer {ARCHS[job['arch']].label} {job['mode']} {job['length']} frames"
    return f"align {job['impl']} ({job['measure']})"
