"""What the benchmark scripts share, written once.

- **Time**: :func:`timed` (wall seconds of one call, CUDA synchronised around it).
- **Memory**: :func:`measured` (seconds and peak MB of one call over the state before it: on CUDA
  ``torch.cuda.max_memory_allocated``, on CPU the peak resident set, ``VmHWM``, reset through
  ``/proc/self/clear_refs`` after returning freed heap memory with ``malloc_trim``).
- **The machine**: :func:`hardware` (CPU model, cores, the CPU's bf16 / AVX-512 / AMX capability from
  the ``/proc/cpuinfo`` flags and oneDNN's own check, torch version, GPU name) and the words the
  tables use for it (:func:`describe`, :func:`capability`). On a CPU without oneDNN's bf16 kernels
  (no AVX-512 on x86) bf16 autocast convolutions run PyTorch's slow reference kernel (~30x slower),
  so every row that reports a precision shows the capability beside it.
- **Markdown**: :func:`markdown_table` and :func:`write_section`. The scripts write measured tables
  only; what the numbers mean is prose written once, in sections of ``docs/benchmarks.md`` that no
  script rewrites (``## Reading ...``).
- **Fresh processes**: :func:`module_command` and :func:`child_env` run a case in a new process of
  the same module (``python -m scripts.bench.<name>``) from any working directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
HEADER = "# Benchmarks\n\nTables written by the scripts in `scripts/bench/`.\n\n"
CAPABILITY_COLUMN = "CPU bf16 / AVX-512 / AMX"


# --------------------------------------------------------------------------- processes
def module_command(module: str, *args: str) -> list[str]:
    """The command running ``python -m <module> <args>`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the repository first on ``PYTHONPATH``, so that
    ``scripts.bench`` imports in a child started from any working directory."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# --------------------------------------------------------------------------- time
def sync(dev: torch.device | str | None) -> None:
    if dev is not None and torch.device(dev).type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn: Callable[[], Any], dev: torch.device | str | None = None) -> float:
    """Wall seconds of ``fn()``; on CUDA the device is synchronised before and after."""
    sync(dev)
    t0 = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- memory
def status_mb(key: str) -> float:
    """A memory line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in MB (2^20 bytes)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def rss_mb() -> float:
    """The resident set now."""
    return status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The peak resident set since the process started or :func:`reset_peak_rss`."""
    return status_mb("VmHWM")


def reset_peak_rss() -> bool:
    """Return freed heap memory to the system and reset the peak resident set to the current one;
    False where the peak could not be reset (it is then an upper bound)."""
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


def measured(fn: Callable[[], Any], dev: torch.device | str) -> tuple[float, float, bool]:
    """(seconds, peak MB over the state before the call, whether the peak was reset) of ``fn()``."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
        seconds = timed(fn, dev)
        return seconds, (torch.cuda.max_memory_allocated(dev) - start) / 2**20, True
    reset = reset_peak_rss()
    base = rss_mb()
    seconds = timed(fn, dev)
    return seconds, peak_rss_mb() - base, reset


# --------------------------------------------------------------------------- the machine
def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    found = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo() if cpuinfo is None else cpuinfo, re.M)
    return found.group(1).strip() if found else (platform.processor() or platform.machine())


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) of ``/proc/cpuinfo``."""
    found = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", _cpuinfo() if cpuinfo is None else cpuinfo, re.M)
    return set(found.group(1).split()) if found else set()


def _mkldnn_bf16() -> bool | None:
    """oneDNN's own check for its bf16 kernels (None where this torch has no such check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def hardware(device: str = "cpu", cpuinfo: str | None = None) -> dict[str, Any]:
    """The machine a benchmark ran on.

    ``bf16``: native bf16 instructions (x86 ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``);
    ``avx512``: ``avx512f``; ``amx``: ``amx_bf16`` or ``amx_tile``; ``mkldnn``: torch has oneDNN;
    ``mkldnn_bf16``: oneDNN's check for its bf16 kernels (None where unknown); ``bf16_fast``: bf16
    autocast convolutions take oneDNN's kernels rather than PyTorch's slow reference one.
    ``cpuinfo``: the text of ``/proc/cpuinfo`` (default: read it).
    """
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    flags = cpu_flags(text)
    mkldnn = bool(torch.backends.mkldnn.is_available())
    mkldnn_bf16 = _mkldnn_bf16()
    bf16 = bool({"avx512_bf16", "amx_bf16", "bf16"} & flags)
    avx512 = "avx512f" in flags
    native = mkldnn_bf16 if mkldnn_bf16 is not None else (bf16 or avx512)
    gpu = None
    if device.startswith("cuda") or torch.cuda.is_available():
        dev = torch.device(device if device.startswith("cuda") else "cuda:0")
        gpu = torch.cuda.get_device_name(dev)
    return {
        "cpu": cpu_model(text),
        "cores": os.cpu_count() or 0,
        "threads": torch.get_num_threads(),
        "bf16": bf16,
        "avx512": avx512,
        "amx": bool({"amx_bf16", "amx_tile"} & flags),
        "mkldnn": mkldnn,
        "mkldnn_bf16": mkldnn_bf16,
        "bf16_fast": bool(mkldnn and native),
        "torch": torch.__version__,
        "gpu": gpu,
        "device": device,
    }


def _yes(flag: bool | None) -> str:
    return "unknown" if flag is None else "yes" if flag else "no"


def capability(info: dict[str, Any]) -> str:
    """The cell of :data:`CAPABILITY_COLUMN` beside a row that reports a precision."""
    cell = f"{_yes(info['bf16'])} / {_yes(info['avx512'])} / {_yes(info['amx'])}"
    if not info["bf16_fast"]:
        cell += "; bf16 convs: slow reference kernel"
    if str(info.get("device", "cpu")).startswith("cuda"):
        cell += "; rows ran on the GPU"
    return cell


def describe(info: dict[str, Any]) -> str:
    """The machine in words: CPU model, cores, threads, the CPU's bf16 capability, the GPU if any."""
    text = (
        f"{info['cpu']}, {info['cores']} cores, {info['threads']} threads; CPU bf16 {_yes(info['bf16'])}, "
        f"AVX-512 {_yes(info['avx512'])}, AMX {_yes(info['amx'])}, oneDNN bf16 {_yes(info['mkldnn_bf16'])}"
    )
    if not info["bf16_fast"]:
        text += " (bf16 autocast convolutions run PyTorch's slow reference kernel)"
    return text + (f"; GPU {info['gpu']}" if info["gpu"] else "")


# --------------------------------------------------------------------------- Markdown
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


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """The lines of a Markdown table. ``align``: one letter per column, ``l`` (``---``) or ``r``
    (``---:``; default: all ``l``). Cells are written with ``str``, an empty one as a single space."""
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r} for {len(header)} columns")

    def line(cells: Sequence[Any]) -> str:
        if len(cells) != len(header):
            raise ValueError(f"{len(cells)} cells for {len(header)} columns: {cells}")
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    return [line(header), line(["---:" if a == "r" else "---" for a in align]), *(line(r) for r in rows)]


def write_section(path: Path, title: str, text: str) -> None:
    """Replace the section ``title`` (``## ...``, up to the next ``## ``) of ``path`` with ``text``,
    or append it; the rest of the file is kept."""
    old = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"{re.escape(title)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n", old)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
