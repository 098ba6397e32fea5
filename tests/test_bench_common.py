"""scripts/bench/common.py: the helpers every benchmark shares. The machine's description has the CPU's
bf16 / AVX-512 / AMX capability as booleans (read from given /proc/cpuinfo text), the table writer
writes the expected Markdown, sections are replaced in place, and the memory and time helpers return
numbers of the right kind (nothing is compared against a time)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python -m pytest` from the root has it; a bare `pytest` may not
    sys.path.insert(0, str(ROOT))
common = importlib.import_module("scripts.bench.common")

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN2 = """processor\t: 0
model name\t: AMD EPYC 7742 64-Core Processor
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_hardware_has_the_capability_keys_as_booleans() -> None:
    info = common.hardware("cpu")
    for key in ("bf16", "avx512", "amx", "mkldnn", "bf16_fast"):
        assert isinstance(info[key], bool), key
    assert info["mkldnn_bf16"] is None or isinstance(info["mkldnn_bf16"], bool)
    assert info["torch"] == torch.__version__
    assert info["cores"] >= 1 and info["threads"] >= 1 and info["cpu"]
    assert info["gpu"] is None or isinstance(info["gpu"], str)


def test_capability_read_from_cpuinfo_flags() -> None:
    spr = common.hardware("cpu", cpuinfo=SAPPHIRE_RAPIDS)
    assert spr["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert (spr["bf16"], spr["avx512"], spr["amx"]) == (True, True, True)
    zen2 = common.hardware("cpu", cpuinfo=ZEN2)
    assert zen2["cpu"] == "AMD EPYC 7742 64-Core Processor"
    assert (zen2["bf16"], zen2["avx512"], zen2["amx"]) == (False, False, False)
    assert common.cpu_flags("") == set()


def test_capability_cell_and_description() -> None:
    fast = {"bf16": True, "avx512": True, "amx": False, "mkldnn_bf16": True, "bf16_fast": True}
    slow = {"bf16": False, "avx512": False, "amx": False, "mkldnn_bf16": False, "bf16_fast": False}
    assert common.capability({**fast, "device": "cpu"}) == "yes / yes / no"
    assert common.capability(slow) == "no / no / no; bf16 convs: slow reference kernel"
    assert common.capability({**fast, "device": "cuda:0"}) == "yes / yes / no; rows ran on the GPU"
    machine = {"cpu": "Some CPU", "cores": 2, "threads": 2, "gpu": None}
    assert common.describe({**machine, **fast}) == (
        "Some CPU, 2 cores, 2 threads; CPU bf16 yes, AVX-512 yes, AMX no, oneDNN bf16 yes"
    )
    text = common.describe({**machine, **slow, "gpu": "Some GPU"})
    assert "slow reference kernel" in text and text.endswith("; GPU Some GPU")


def test_markdown_table() -> None:
    lines = common.markdown_table(["name", "ms", "note"], [["a", 1.5, "x"], ["b", "", ""]], "lrl")
    assert lines == [
        "| name | ms | note |",
        "| --- | ---: | --- |",
        "| a | 1.5 | x |",
        "| b | | |",
    ]
    assert common.markdown_table(["a"], []) == ["| a |", "| --- |"]
    with pytest.raises(ValueError):
        common.markdown_table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError):
        common.markdown_table(["a", "b"], [], "l")


def test_numbers_as_printed() -> None:
    assert [common.sig(x) for x in (0, 1234.5, 12.345, 0.012345)] == ["0", "1234", "12.35", "0.01235"]
    assert common.ratio("3", "2") == "1.50x"
    assert common.ratio("3", "0") == common.ratio("error", "2") == ""


def test_write_section_replaces_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    common.write_section(path, "## A", "## A\n\nfirst\n")
    assert path.read_text() == common.HEADER + "## A\n\nfirst\n"
    common.write_section(path, "## B", "## B\n\nb\n")
    common.write_section(path, "## A", "## A\n\nsecond\n")
    assert path.read_text() == common.HEADER + "## A\n\nsecond\n\n## B\n\nb\n"


def test_time_and_memory_helpers() -> None:
    calls = []
    assert common.timed(lambda: calls.append(1)) >= 0 and calls == [1]
    seconds, peak, reset = common.measured(lambda: torch.ones(1 << 20).sum(), "cpu")
    assert seconds >= 0 and peak >= 0 and isinstance(reset, bool)
    assert common.peak_rss_mb() >= common.rss_mb() > 0


def test_child_env_puts_the_repository_first() -> None:
    env = common.child_env({"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":") == [str(ROOT), "/elsewhere"]
    assert common.module_command("scripts.bench.align", "--case", "x")[1:] == [
        "-m",
        "scripts.bench.align",
        "--case",
        "x",
    ]
