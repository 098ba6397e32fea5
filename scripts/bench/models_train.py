"""The training-step job of ``python -m scripts.bench.models``: clips/s and peak memory of training
steps (forward + Charbonnier loss + backward + Adam step) of one architecture and variant (float32,
bf16 autocast, compiled, checkpointing, channels_last, or the reference implementation), and its
table. Every row names a precision, so every row shows the CPU's bf16 / AVX-512 / AMX capability."""

from __future__ import annotations

import argparse
import inspect
import statistics
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from .common import CAPABILITY_COLUMN, capability, markdown_table, measured, ratio, timed
from .models_spec import (
    ARCHS,
    VARIANT_LABELS,
    VARIANTS,
    Setup,
    arch_config,
    compile_cache,
    peak_cell,
    process_setup,
    reference_label,
    reference_missing,
    tier,
)

TRAIN_COLUMNS = [
    "architecture",
    "implementation",
    CAPABILITY_COLUMN,
    "clips/s",
    "vs vsrlab float32",
    "vs reference",
    "peak MB",
    "compile s",
    "params",
]


def build_reference(key: str, cfg: dict[str, Any], basicsr: str | None, psrt: str | None) -> tuple[Any, str]:
    """The reference network of ``key`` with ``cfg``'s arguments, and how its DCN runs; imported at
    run time from source checkouts as ``scripts/crosscheck_basicsr.py`` and ``crosscheck_psrt.py`` do."""
    from scripts.crosscheck_basicsr import import_basicsr_archs, with_cuda_reported

    from .align import torchvision_available

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
        from scripts.crosscheck_psrt import import_psrt

        mods = {module: import_psrt(Path(psrt), Path(basicsr))}
    cls = getattr(mods[module], cls_name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in cfg.items() if k in params}
    return with_cuda_reported(cls, **kwargs), dcn


def train_case(job: dict[str, Any]) -> dict[str, Any]:
    """Clips/s and peak memory of training steps of one architecture and variant."""
    from vsrlab.archs.pretrained import build_arch
    from vsrlab.losses import CharbonnierLoss
    from vsrlab.models.speed import apply_speed_options

    dev = process_setup(job)
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


def render_training(rows: list[dict[str, Any]], args: argparse.Namespace, hw: dict[str, Any]) -> list[str]:
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
        + "). `vs vsrlab float32` and `vs reference` divide the row's clips/s by that row's. "
        f"`{CAPABILITY_COLUMN}`: whether the CPU has native bf16 instructions, AVX-512 and AMX "
        "(without oneDNN's bf16 kernels, bf16 autocast convolutions run PyTorch's slow reference kernel).",
        "",
    ]
    shapes = []
    for key in args.only:
        spec = ARCHS[key]
        used = getattr(spec, level)
        changes = ", ".join(f"{k}={v}" for k, v in used.arch.items()) or "none (full size)"
        notes = "; ".join(n for n in (spec.note,) if n)
        changes += f"; {notes}" if notes else ""
        shapes.append([spec.label, spec.cuda.describe(spec.scale), used.describe(spec.scale), changes])
    lines += markdown_table(
        ["architecture", "recipe shape (per GPU)", "shape measured", "model changes"], shapes
    )
    cap = capability(hw)
    table = []
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
                table.append([spec.label, name, cap, r["error"], "", "", "", "", ""])
                continue
            vs_ref = ratio(r["clips"], ref) if ref else (missing or "reference failed")
            compile_s = f"{r['compile_s']:.1f} ({r.get('compile_cache', '?')})" if "compile_s" in r else ""
            vs_base = ratio(r["clips"], base) if base else ""
            params = f"{r['params'] / 1e6:.2f}M"
            table.append(
                [spec.label, name, cap, r["clips"], vs_base, vs_ref, peak_cell(r), compile_s, params]
            )
        if spec.reference is not None and "reference" not in mine:
            table.append([spec.label, reference_label(spec), cap, missing, "", "", "", "", ""])
    lines += ["", *markdown_table(TRAIN_COLUMNS, table, "lllrrrrrr")]
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
