"""``vsrlab-report``: results table, G x N heatmaps (Fig. 16) and offset diversity vs PSNR (Fig. 9) of fake
sweeps with known numbers."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vsrlab import report
from vsrlab.cli.report import main
from vsrlab.report import (
    best_and_final,
    collect_jobs,
    column_headers,
    format_params,
    gain_per_mparam,
    gn_grid,
    pearson_correlation,
)

G_KEY, N_KEY = "arch.deformable_groups", "arch.num_offsets"


# ----------------------------------------------------------------------------------------- fake sweeps


def metrics(
    psnr: float | None = None,
    *,
    params: int | None = None,
    diversity: float | None = None,
    history: list[tuple[int, float, float]] | None = None,
    step: int | None = None,
    swept: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ``metrics.json`` with a one-entry history at ``psnr`` (or the given ``history``)."""
    out: dict[str, Any] = {}
    if history is None and psnr is not None:
        history = [(step or 40, psnr, 0.8)]
    if history:
        out["val_history"] = [{"step": s, "psnr": p, "ssim": q, "psnr_bicubic": 25.0} for s, p, q in history]
        last = history[-1]
        out["val"] = {"val/psnr": last[1], "val/ssim": last[2], "val/psnr_best": max(h[1] for h in history)}
        out["global_step"] = step if step is not None else last[0]
    if params is not None:
        out["params"] = {"total": params, "trainable": params}
    out["offset_diversity"] = diversity
    if swept is not None:
        out["swept"] = swept
    return out


def write_job(
    sweep: Path,
    subdir: str,
    *,
    metrics_data: dict | str | None = None,
    status: dict | None = None,
    done: bool = False,
    overrides: list[str] | None = None,
) -> Path:
    job = sweep / subdir
    job.mkdir(parents=True, exist_ok=True)
    if metrics_data is not None:
        text = metrics_data if isinstance(metrics_data, str) else json.dumps(metrics_data)
        (job / "metrics.json").write_text(text)
    if status is not None:
        (job / "status.json").write_text(json.dumps(status))
    if overrides is not None:
        (job / ".hydra").mkdir(exist_ok=True)
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {line}\n" for line in overrides))
    if done:
        (job / "done").write_text("")
    return job


def gn_subdir(g: int, n: int) -> str:
    return f"deformable_groups={g},num_offsets={n}"


def write_manifest(
    sweep: Path, jobs: list[tuple[str, dict[str, str]]], swept_keys: list[str], name: str = "offset_diversity"
) -> None:
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "name": name,
                "swept_keys": swept_keys,
                "jobs": [{"subdir": subdir, "overrides": overrides} for subdir, overrides in jobs],
            }
        )
    )


def gn_sweep(
    sweep: Path,
    results: dict[tuple[int, int], tuple[float, int, float | None] | None],
    grid: list[tuple[int, int]] | None = None,
) -> Path:
    """A G x N sweep: ``results[(G, N)] = (psnr, params, diversity)``; cells of ``grid`` not in
    ``results`` (or mapped to None) are pending."""
    cells = grid or list(results)
    write_manifest(
        sweep, [(gn_subdir(g, n), {G_KEY: str(g), N_KEY: str(n)}) for g, n in cells], [G_KEY, N_KEY]
    )
    for (g, n), value in results.items():
        if value is not None:
            psnr, params, diversity = value
            write_job(
                sweep,
                gn_subdir(g, n),
                metrics_data=metrics(psnr, params=params, diversity=diversity),
                done=True,
            )
    return sweep


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


# ----------------------------------------------------------------------------------------- the table


def test_table_statuses_columns_and_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep"
    jobs = [
        ("g1n1", {G_KEY: "1", N_KEY: "1"}),
        ("g1n2", {G_KEY: "1", N_KEY: "2"}),
        ("g2n1", {G_KEY: "2", N_KEY: "1"}),
        ("g2n2", {G_KEY: "2", N_KEY: "2"}),
        ("g4n1", {G_KEY: "4", N_KEY: "1"}),
        ("g4n2", {G_KEY: "4", N_KEY: "2"}),
    ]
    write_manifest(sweep, jobs, [G_KEY, N_KEY])
    write_job(
        sweep,
        "g1n1",
        metrics_data=metrics(27.5, params=1_234_567, diversity=0.4, step=40),
        status={"state": "done", "step": 40, "max_steps": 40},
        done=True,
    )
    write_job(
        sweep,
        "g1n2",
        metrics_data=metrics(27.0, params=1_300_000),
        status={"state": "preempted", "step": 20, "max_steps": 40, "preemptions": 2},
    )
    write_job(
        sweep, "g2n1", status={"state": "failed", "step": 5, "max_steps": 40, "error": "CUDA out of memory"}
    )
    write_job(sweep, "g2n2")  # directory only: started
    # g4n1: no directory -> pending
    write_job(sweep, "g4n2", status={"state": "running", "step": 12, "max_steps": 40})

    assert main([f"sweep_dir={sweep}"]) == 0
    header, rows = read_csv(sweep / "report.csv")
    assert header == [
        "job",
        "deformable_groups",
        "num_offsets",
        "params",
        "best val PSNR",
        "best val SSIM",
        "best step",
        "final val PSNR",
        "final val SSIM",
        "offset diversity",
        "steps",
        "pre-emptions",
        "status",
    ]
    assert [r["job"] for r in rows] == [j for j, _ in jobs]  # manifest order
    assert [r["status"] for r in rows] == ["done", "preempted", "failed", "started", "pending", "running"]
    assert [r["deformable_groups"] for r in rows] == ["1", "1", "2", "2", "4", "4"]
    first = rows[0]
    assert first["params"] == "1234567"
    assert float(first["best val PSNR"]) == 27.5 and float(first["best val SSIM"]) == 0.8
    assert first["best step"] == "40" and first["steps"] == "40"
    assert float(first["offset diversity"]) == 0.4
    assert rows[1]["offset diversity"] == ""  # null in metrics.json
    assert rows[2]["steps"] == "5"  # from status.json when metrics.json is absent
    assert rows[5]["steps"] == "12"
    assert [r["pre-emptions"] for r in rows] == ["0", "2", "0", "", "", "0"]  # from status.json
    assert all(
        rows[4][c] == "" for c in header if c not in ("job", "deformable_groups", "num_offsets", "status")
    )

    md = (sweep / "report.md").read_text()
    assert md.startswith("# Sweep report: offset_diversity\n")
    assert "| g1n1 | 1 | 1 | 1.23M | 27.50 | 0.8000 | 40 | 27.50 | 0.8000 | 0.400 | 40 | 0 | done |" in md
    assert "| g4n1 | 4 | 1 | — |" in md
    assert "`g2n1`: CUDA out of memory" in md
    out = capsys.readouterr().out
    assert "g4n2" in out and "running" in out


def test_best_vs_final_from_val_history() -> None:
    history = {
        "global_step": 60,
        "val": {"val/psnr": 27.0, "val/ssim": 0.79, "val/psnr_best": 99.0},
        "val_history": [
            {"step": 20, "psnr": 26.9, "ssim": 0.78},
            {"step": 40, "psnr": 27.4, "ssim": 0.82},
            {"step": 60, "psnr": 27.1, "ssim": 0.80},
        ],
    }
    assert best_and_final(history) == {
        "best_psnr": 27.4,
        "best_ssim": 0.82,
        "best_step": 40,
        "final_psnr": 27.1,
        "final_ssim": 0.80,
    }
    # no history: final from `val`, best from val/psnr_best with unknown SSIM and step
    assert best_and_final({"val": {"val/psnr": 27.0, "val/ssim": 0.79, "val/psnr_best": 27.3}}) == {
        "best_psnr": 27.3,
        "best_ssim": None,
        "best_step": None,
        "final_psnr": 27.0,
        "final_ssim": 0.79,
    }
    assert best_and_final({}) == dict.fromkeys(
        ("best_psnr", "best_ssim", "best_step", "final_psnr", "final_ssim")
    )


def test_best_and_final_in_csv(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_manifest(sweep, [("a", {"model.lr": "1e-4"})], ["model.lr"])
    write_job(
        sweep,
        "a",
        done=True,
        metrics_data=metrics(history=[(20, 27.0, 0.70), (40, 28.0, 0.81), (60, 27.5, 0.79)], params=10),
    )
    main([f"sweep_dir={sweep}"])
    (row,) = read_csv(sweep / "report.csv")[1]
    assert (row["lr"], row["best val PSNR"], row["best val SSIM"], row["best step"]) == (
        "1e-4",
        "28.0",
        "0.81",
        "40",
    )
    assert (row["final val PSNR"], row["final val SSIM"], row["steps"]) == ("27.5", "0.79", "60")


# ----------------------------------------------------------------------------------------- G x N (Fig. 16)


def test_gain_per_mparam_2x2_by_hand() -> None:
    psnr = np.array([[27.0, 27.3], [27.2, 27.6]])
    params = np.array([[1_000_000, 1_500_000], [1_200_000, 2_000_000]], dtype=float)
    gain = gain_per_mparam(psnr, params, [1, 2], [1, 2])
    expected = np.array([[np.nan, 0.3 / 0.5], [0.2 / 0.2, 0.6 / 1.0]])
    np.testing.assert_allclose(gain, expected, equal_nan=True)
    assert np.isnan(gain[0, 0])


def test_gain_per_mparam_3x2_from_jobs(tmp_path: Path) -> None:
    # params and PSNR grow with G and N; (G=4, N=2) is pending, (G=2, N=1) has no extra parameters
    results = {
        (1, 1): (27.0, 2_000_000, 0.1),
        (1, 3): (27.3, 2_600_000, 0.2),
        (2, 1): (27.1, 2_000_000, 0.2),
        (2, 3): (27.5, 3_000_000, 0.3),
        (4, 1): (27.2, 2_250_000, 0.3),
        (4, 3): None,
    }
    # manifest order deliberately not sorted: the grid axes must be ascending anyway
    order = [(4, 3), (2, 3), (1, 3), (4, 1), (2, 1), (1, 1)]
    gn_sweep(tmp_path / "sweep", results, grid=order)
    _, rows = collect_jobs(tmp_path / "sweep")
    g_values, n_values, psnr = gn_grid(rows, G_KEY, N_KEY, "best_psnr")
    _, _, params = gn_grid(rows, G_KEY, N_KEY, "params")
    assert (g_values, n_values) == ([1, 2, 4], [1, 3])
    np.testing.assert_allclose(psnr, [[27.0, 27.3], [27.1, 27.5], [27.2, np.nan]], equal_nan=True)
    gain = gain_per_mparam(psnr, params, g_values, n_values)
    expected = np.array(
        [[np.nan, (27.3 - 27.0) / 0.6], [np.nan, (27.5 - 27.0) / 1.0], [(27.2 - 27.0) / 0.25, np.nan]]
    )
    np.testing.assert_allclose(gain, expected, equal_nan=True)


def test_gain_needs_the_baseline() -> None:
    psnr = np.array([[np.nan, 27.3]])
    with pytest.raises(ValueError, match="baseline"):
        gain_per_mparam(psnr, np.array([[1e6, 2e6]]), [1], [1, 2])
    with pytest.raises(ValueError, match="G=1, N=1"):
        gain_per_mparam(np.array([[27.0]]), np.array([[1e6]]), [2], [2])


def test_heatmaps_written_and_load(tmp_path: Path) -> None:
    import matplotlib.image

    results = {
        (g, n): (27.0 + 0.1 * g + 0.05 * n, 1_000_000 + 10_000 * g * n, 0.1 * g * n)
        for g in (1, 2)
        for n in (1, 2)
    }
    sweep = gn_sweep(tmp_path / "sweep", results)
    main([f"sweep_dir={sweep}"])
    for name in ("heatmap_psnr.png", "heatmap_gain_per_mparam.png"):
        image = matplotlib.image.imread(sweep / name)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    md = (sweep / "report.md").read_text()
    assert "| G=2 | 27.25 | 27.30 |" in md  # PSNR grid, rows G
    gain_22 = (27.3 - 27.15) / 0.03
    assert f"| G=2 | {(27.25 - 27.15) / 0.01:.3f} | {gain_22:.3f} |" in md
    assert "`heatmap_psnr.png`, `heatmap_gain_per_mparam.png`" in md


def test_gain_heatmap_skipped_without_baseline_result(tmp_path: Path) -> None:
    results = {
        (1, 1): None,
        (1, 2): (27.2, 2_000_000, 0.2),
        (2, 1): (27.1, 1_500_000, 0.1),
        (2, 2): (27.4, 2_500_000, 0.3),
    }
    sweep = gn_sweep(tmp_path / "sweep", results)
    main([f"sweep_dir={sweep}"])
    assert (sweep / "heatmap_psnr.png").exists()
    assert not (sweep / "heatmap_gain_per_mparam.png").exists()
    md = (sweep / "report.md").read_text()
    assert "Gain heatmap skipped: the G=1, N=1 baseline job has no PSNR" in md
    assert "| G=1 | — | 27.20 |" in md  # the pending job is a blank cell


def test_heatmaps_skipped_when_other_swept_keys_vary(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    keys = [G_KEY, N_KEY, "model.lr"]  # a seed axis would form cells instead (test_report_stats.py)
    jobs = [(f"g{g}n1lr{s}", {G_KEY: str(g), N_KEY: "1", "model.lr": str(s)}) for g in (1, 2) for s in (1, 2)]
    write_manifest(sweep, jobs, keys)
    for i, (subdir, _) in enumerate(jobs):
        write_job(sweep, subdir, metrics_data=metrics(27 + 0.1 * i, params=1000 + i), done=True)
    main([f"sweep_dir={sweep}"])
    assert not (sweep / "heatmap_psnr.png").exists()
    assert "Heatmaps skipped: other swept keys vary too (model.lr)" in (sweep / "report.md").read_text()


# ----------------------------------------------------------------------------------------- Fig. 9 correlation


def test_pearson_matches_corrcoef(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    div = [0.10, 0.25, 0.32, 0.51, 0.60]
    best = [27.00, 27.31, 27.20, 27.58, 27.49]
    results = {(g, 1): (p, 1_000_000 * g, d) for g, p, d in zip((1, 2, 3, 4, 5), best, div, strict=True)}
    sweep = gn_sweep(tmp_path / "sweep", results)
    main([f"sweep_dir={sweep}"])
    expected = np.corrcoef(div, best)[0, 1]
    md = (sweep / "report.md").read_text()
    match = re.search(r"Pearson r = (-?[0-9.]+) \(p = ([0-9.e-]+), 5 jobs\)", md)
    assert match and float(match.group(1)) == pytest.approx(expected, abs=5e-4)
    assert pearson_correlation(div, best).r == pytest.approx(expected, rel=1e-9)
    assert (sweep / "diversity_vs_psnr.png").stat().st_size > 0
    assert f"Pearson r = {expected:.3f}" in capsys.readouterr().out


def test_correlation_uses_the_chosen_metric(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    div = [0.1, 0.2, 0.3, 0.4]
    finals = [27.0, 26.5, 27.4, 26.9]
    write_manifest(sweep, [(f"j{i}", {"arch.x": str(i)}) for i in range(4)], ["arch.x"])
    for i, (d, f) in enumerate(zip(div, finals, strict=True)):
        write_job(
            sweep,
            f"j{i}",
            done=True,
            metrics_data=metrics(history=[(10, 28.0 + i * 0.1, 0.8), (20, f, 0.8)], params=1, diversity=d),
        )
    out = tmp_path / "out"
    main([f"sweep_dir={sweep}", f"out={out}", "metric=final"])
    assert not (sweep / "report.md").exists() and (out / "report.csv").exists()
    expected = np.corrcoef(div, finals)[0, 1]
    assert f"Pearson r = {expected:.3f}" in (out / "report.md").read_text()


def test_correlation_skipped_with_two_points(tmp_path: Path) -> None:
    results = {
        (1, 1): (27.0, 1_000_000, 0.1),
        (2, 1): (27.3, 1_100_000, 0.3),
        (4, 1): (27.4, 1_300_000, None),
    }
    sweep = gn_sweep(tmp_path / "sweep", results)
    main([f"sweep_dir={sweep}"])
    md = (sweep / "report.md").read_text()
    assert "Pearson r not computed: 2 jobs with both offset diversity and PSNR (needs at least 3)" in md
    assert not (sweep / "diversity_vs_psnr.png").exists()
    constant = pearson_correlation([0.2, 0.2, 0.2], [27.0, 27.1, 27.2])
    assert constant.r is None and "same for all 3 jobs" in (constant.reason or "")


# ----------------------------------------------------------------------------------------- inputs


def test_scan_mode_without_manifest(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    values = {0: (1, 1), 1: (1, 2), 2: (2, 1), 10: (2, 2)}
    for num, (g, n) in values.items():
        write_job(
            sweep,
            str(num),
            done=True,
            metrics_data=metrics(27.0 + g * 0.1 + n * 0.01, params=1000 * g * n),
            overrides=[
                f"{G_KEY}={g}",
                f"+{N_KEY}={n}",
                "experiment=offsets",
                f"hydra.job.num={num}",
                "trainer.max_steps=40",
            ],
        )
    (sweep / "not_a_job").mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    manifest, rows = collect_jobs(sweep)
    assert manifest["source"] == "scan" and manifest["name"] == "multirun"
    assert manifest["swept_keys"] == [G_KEY, N_KEY]
    assert [r["job"] for r in rows] == ["0", "1", "2", "10"]  # natural order
    main([f"sweep_dir={sweep}"])
    header, csv_rows = read_csv(sweep / "report.csv")
    assert header[:3] == ["job", "deformable_groups", "num_offsets"]
    assert [(r["deformable_groups"], r["num_offsets"]) for r in csv_rows] == [
        ("1", "1"),
        ("1", "2"),
        ("2", "1"),
        ("2", "2"),
    ]
    assert (sweep / "heatmap_gain_per_mparam.png").exists()


def report_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line error of ``vsrlab-report args`` (exit status 1)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("vsrlab-report: error: ") and len(err.splitlines()) == 2, err
    return err.splitlines()[0]


def test_missing_sweep_dir_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no_such_sweep"
    assert str(missing) in report_error([f"sweep_dir={missing}"], capsys)


def test_sweep_without_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    (empty / "logs").mkdir(parents=True)
    assert "no jobs" in report_error([f"sweep_dir={empty}"], capsys)
    write_manifest(empty, [], [])
    assert "lists no jobs" in report_error([f"sweep_dir={empty}"], capsys)


def test_earlier_command_line_names_the_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, key in (([str(tmp_path)], f"sweep_dir={tmp_path}"), (["--metric", "final"], "metric=...")):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        assert f"use `{key}`" in capsys.readouterr().err


def test_missing_keys_do_not_crash(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_manifest(
        sweep,
        [(gn_subdir(g, n), {G_KEY: str(g), N_KEY: str(n)}) for g in (1, 2) for n in (1, 2)],
        [G_KEY, N_KEY],
    )
    write_job(sweep, gn_subdir(1, 1), metrics_data={}, done=True)
    write_job(sweep, gn_subdir(1, 2), metrics_data={"val": {}, "offset_diversity": None, "params": {}})
    write_job(
        sweep, gn_subdir(2, 1), metrics_data='{"global_step": 4', status={"state": "running"}
    )  # torn write
    write_job(sweep, gn_subdir(2, 2), metrics_data={"val": {"val/psnr": 27.0}, "global_step": 8})
    assert main([f"sweep_dir={sweep}"]) == 0
    _, rows = read_csv(sweep / "report.csv")
    assert [r["status"] for r in rows] == ["done", "started", "running", "started"]
    assert rows[3]["final val PSNR"] == "27.0" and rows[3]["best val PSNR"] == "" and rows[3]["steps"] == "8"
    md = (sweep / "report.md").read_text()
    assert "Gain heatmap skipped" in md and "Pearson r not computed: 0 jobs" in md


def test_small_helpers() -> None:
    assert (
        format_params(1_234_567) == "1.23M"
        and format_params(12_345) == "12.3K"
        and format_params(None) == "—"
    )
    assert column_headers(["arch.num_feat", "model.lr", "data.lr"]) == {
        "arch.num_feat": "num_feat",
        "model.lr": "model.lr",
        "data.lr": "data.lr",
    }
    assert report.find_gn_keys(["arch.num_offsets", "arch.deformable_groups"]) == (G_KEY, N_KEY)
    assert report.find_gn_keys(["arch.num_offsets"]) is None
    assert report.parse_overrides(["a.b=1", "++c=x=y", "~d", "hydra.run.dir=/x"]) == {"a.b": "1", "c": "x=y"}
    assert math.isnan(gain_per_mparam(np.array([[27.0, 27.5]]), np.array([[1e6, 1e6]]), [1], [1, 2])[0, 1])
