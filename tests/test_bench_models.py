"""``python -m scripts.bench.models``: one ``--quick`` run for EDVR-M on the CPU (no compile, no
references), every case in one process: the tables it writes have the expected rows and columns, their
ratios are the quotients of their own numbers, and every training row (each names a precision) shows
the CPU's bf16 / AVX-512 / AMX capability. Nothing is timed against anything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark run the tests read takes over 20 s on 2 cores

ROOT = Path(__file__).resolve().parents[1]
MODULE = "scripts.bench.models"
CAPABILITY = "CPU bf16 / AVX-512 / AMX"
TRAIN_COLUMNS = [
    "architecture",
    "implementation",
    CAPABILITY,
    "clips/s",
    "vs vsrlab float32",
    "vs reference",
    "peak MB",
    "compile s",
    "params",
]


def tables(text: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of ``text``, each as a list of rows keyed by the header's cells."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            header, rows = block[0], block[2:]
            found.append([dict(zip(header, row, strict=True)) for row in rows])
            block = []
    return found


def table_with(text: str, column: str) -> list[dict[str, str]]:
    return next(t for t in tables(text) if t and column in t[0])


def times(cell: str) -> float:
    assert cell.endswith("x"), cell
    return float(cell[:-1])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Kept section\n\nkept text\n")
    cmd = [sys.executable, "-m", MODULE, "--quick", "--only", "edvr_m", "--no-compile", "--in-process"]
    cmd += ["--no-malloc-cache", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: seconds, even beside other busy processes
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text()


def test_section_written_beside_the_others(written: str) -> None:
    assert "## Kept section\n\nkept text\n" in written
    assert written.count("## Models: training and inference") == 1
    assert "--quick --only edvr_m --no-compile" in written  # the exact command
    assert "`python -m scripts.bench.models --quick" in written


def test_training_rows_and_ratios(written: str) -> None:
    rows = table_with(written, "clips/s")
    assert list(rows[0]) == TRAIN_COLUMNS
    names = [r["implementation"] for r in rows]
    assert names == [
        "vsrlab float32",
        "vsrlab bf16 autocast",
        "vsrlab checkpointing",
        "BasicSR EDVR (reference)",
    ]
    assert all(r["architecture"] == "EDVR-M" for r in rows)
    for r in rows:  # bf16 / AVX-512 / AMX of this CPU, the same in every row
        assert re.fullmatch(r"(yes|no) / (yes|no) / (yes|no)(; .*)?", r[CAPABILITY]), r[CAPABILITY]
        assert r[CAPABILITY] == rows[0][CAPABILITY]
    base = float(rows[0]["clips/s"])
    for r in rows[:3]:
        clips = float(r["clips/s"])
        assert clips > 0 and float(r["peak MB"]) >= 0
        assert times(r["vs vsrlab float32"]) == pytest.approx(clips / base, abs=0.0051)
        assert r["vs reference"] == "not measured: no --basicsr"
        assert r["params"] == "3.30M"  # EDVR-M at full width
        assert r["compile s"] == ""
    assert rows[3]["clips/s"] == "not measured: no --basicsr"
    shapes = table_with(written, "shape measured")
    assert shapes[0]["shape measured"] == "batch 1 x 5 frames x 16x16 LR (-> 64x64)"
    assert shapes[0]["recipe shape (per GPU)"] == "batch 4 x 5 frames x 64x64 LR (-> 256x256)"


def test_inference_memory_per_clip_length(written: str) -> None:
    rows = table_with(written, "stream peak MB")
    assert [(r["architecture"], r["clip frames"]) for r in rows] == [("EDVR-M", "4"), ("EDVR-M", "8")]
    for r in rows:
        for column in ("stream frames/s", "stream peak MB", "whole-clip frames/s", "whole-clip peak MB"):
            assert float(r[column]) >= 0, (column, r)
        quotient = float(r["whole-clip frames/s"]) / float(r["stream frames/s"])
        assert times(r["stream time vs whole"]) == pytest.approx(quotient, abs=0.0051)


def test_alignment_op_rows(written: str) -> None:
    rows = table_with(written, "fwd+bwd ms")
    names = [r["implementation"] for r in rows]
    assert names == ["vsrlab deform_conv2d (decomposed)", "dense 3x3 conv2d"]  # no torchvision here
    ours = float(rows[0]["fwd+bwd ms"])
    for r in rows:
        assert times(r["vs vsrlab deform_conv2d"]) == pytest.approx(float(r["fwd+bwd ms"]) / ours, abs=0.0051)
        assert float(r["peak MB"]) >= 0
