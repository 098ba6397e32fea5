"""What ``python -m scripts.bench.models`` measures: the architectures, their shapes per tier, the
training variants, the inference and alignment-op settings, and the helpers every case shares."""

from __future__ import annotations

import getpass
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .common import ROOT

SECTION = "## Models: training and inference"
MODULE = "scripts.bench.models"


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
        note="the recipe's default row, row/vsrt_alignment=none (no published implementation)",
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


def process_setup(job: dict[str, Any]) -> torch.device:
    """The device of ``job``, with the allocator and cuDNN set as vsrlab-train / -infer set them."""
    dev = torch.device(job["device"])
    if dev.type == "cpu" and job.get("malloc_cache", True):
        from vsrlab.utils.system import keep_freed_memory

        keep_freed_memory()  # what vsrlab-train and vsrlab-infer do (extras.cpu_malloc_cache)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # trainer=gpu
    torch.manual_seed(0)
    return dev


def compile_cache() -> Path:
    """The benchmark's own torch.compile caches (inductor's and triton's), kept between runs: a case
    ended mid-compile can leave an empty kernel library there that inductor would load as built, so
    the caches of training runs are not shared."""
    return Path(tempfile.gettempdir()) / f"vsrlab_bench_models_{getpass.getuser()}"


def reference_missing(spec: ArchSpec, args: Any) -> str:
    """Why the reference of ``spec`` cannot be measured ('' when it can)."""
    if spec.reference is None:
        return "no reference"
    if spec.reference[0] == "basicsr" and not args.basicsr:
        return "not measured: no --basicsr"
    if spec.reference[0] == "psrt" and not (args.psrt and args.basicsr):
        return "not measured: needs --psrt and --basicsr"
    return ""


def reference_label(spec: ArchSpec) -> str:
    source, _, cls = spec.reference
    return f"{REFERENCE_SOURCES[source]} {cls} (reference)"


def peak_cell(row: dict[str, Any]) -> str:
    return f"{row['peak_mb']:.0f}" + ("" if row.get("peak_reset", True) else " (upper bound)")
