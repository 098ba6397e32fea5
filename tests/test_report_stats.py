"""``vsrlab-report`` statistics over seeds: cells of a ``seed`` axis with mean, std and 95% t interval,
paired differences to a baseline (by seed and test clip), intervals on the heatmaps and motion
figures, the correlation's Fisher z interval and its within-noise warning; fake sweeps with known
numbers, the expected intervals computed here by hand."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report import G_KEY, N_KEY, metrics, write_job, write_manifest

from vsrlab.cli.report import main
from vsrlab.report import Report, fisher_interval, pearson_correlation, summarize, write_report
from vsrlab.report.stats import paired_over_clips, paired_over_seeds

T3 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (n = 3)
T6 = 2.5705818366147395  # 5 degrees of freedom (n = 6)
Z = 1.959963984540054
ALIGN = "arch.alignment"


def half_width(t: float, values: list[float]) -> float:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return t * std / math.sqrt(len(values))


def seed_sweep(
    sweep: Path,
    psnr: dict[str, list[float | None]],
    key: str = ALIGN,
    *,
    clips: dict[str, list[dict[str, float]]] | None = None,
    diversity: dict[str, float] | None = None,
) -> Path:
    """Cells ``key=<name>`` x seeds 0, 1, ...: ``psnr[name][seed]`` the val PSNR (None: the job is
    pending), ``clips[name][seed]`` its per-clip test PSNR."""
    jobs = [
        (f"{key.rsplit('.', 1)[-1]}={name},seed={s}", {key: name, "seed": str(s)})
        for name, values in psnr.items()
        for s in range(len(values))
    ]
    write_manifest(sweep, jobs, [key, "seed"], name="seeds")
    for subdir, swept in jobs:
        name, seed = swept[key], int(swept["seed"])
        value = psnr[name][seed]
        if value is None:
            continue
        data = metrics(value, params=1000, diversity=None if diversity is None else diversity[name])
        if clips is not None:
            scores = clips[name][seed]
            data["test"] = {
                "clips": {c: {"psnr": p, "ssim": 0.8, "frames": 4} for c, p in scores.items()},
                "mean": {"psnr": sum(scores.values()) / len(scores), "ssim": 0.8},
            }
        write_job(sweep, subdir, metrics_data=data, done=True)
    return sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(text: str) -> float:
    return float(text)


# ----------------------------------------------------------------------------------------- cells


NONE = [27.0, 27.2, 27.4]
FLOW = [27.3, 27.55, 27.8]  # NONE + [0.30, 0.35, 0.40]: paired mean 0.35, std 0.05
DEFORM = [27.3, 27.0, 27.45]  # NONE + [0.30, -0.20, 0.05]: paired mean 0.05, std 0.25


def test_cells_mean_std_and_t_interval(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sweep", {"none": NONE, "flow": FLOW})
    report = write_report(sweep)
    assert report.cells is not None and [c.label for c in report.cells] == [
        "alignment=none",
        "alignment=flow",
    ]
    cells = {r["cell"]: r for r in read_csv(sweep / "report_cells.csv")}
    none = cells["alignment=none"]
    assert none["seeds"] == "3" and none["best val PSNR n"] == "3"
    assert number(none["best val PSNR mean"]) == pytest.approx(27.2, abs=1e-12)
    assert number(none["best val PSNR std"]) == pytest.approx(0.2, abs=1e-12)
    assert number(none["best val PSNR ci95"]) == pytest.approx(T3 * 0.2 / math.sqrt(3), rel=1e-9)
    flow = cells["alignment=flow"]
    assert number(flow["final val PSNR mean"]) == pytest.approx(27.55, abs=1e-12)
    assert number(flow["final val PSNR ci95"]) == pytest.approx(half_width(T3, FLOW), rel=1e-9)
    assert number(flow["best val SSIM mean"]) == 0.8 and number(flow["best val SSIM std"]) == 0.0
    assert "test PSNR mean" not in flow  # no job was tested

    jobs = read_csv(sweep / "report.csv")  # still one row per job, each with its cell's numbers
    assert [r["job"] for r in jobs][:2] == ["alignment=none,seed=0", "alignment=none,seed=1"]
    assert [r["seed"] for r in jobs] == ["0", "1", "2"] * 2
    assert {r["cell"] for r in jobs[3:]} == {"alignment=flow"}
    assert number(jobs[4]["best val PSNR"]) == 27.55
    assert number(jobs[4]["best val PSNR ci95"]) == pytest.approx(half_width(T3, FLOW), rel=1e-9)

    md = (sweep / "report.md").read_text()
    hw = T3 * 0.2 / math.sqrt(3)  # 0.4968
    assert f"| alignment=none | none | 3 | 1.0K | 27.20 ± {hw:.2f} (3) | 0.8000 ± 0.0000 (3) |" in md
    assert "## Jobs" in md and "| alignment=flow,seed=2 | flow | 2 |" in md


def test_a_cell_of_one_seed_has_no_interval(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sweep", {"none": NONE, "flow": [27.5, None, None]})
    report = write_report(sweep, baseline="alignment=none")
    flow = {r["cell"]: r for r in read_csv(sweep / "report_cells.csv")}["alignment=flow"]
    assert (flow["seeds"], flow["best val PSNR n"], flow["best val PSNR mean"]) == ("3", "1", "27.5")
    assert flow["best val PSNR std"] == "" and flow["best val PSNR ci95"] == ""
    assert flow["status"] == "1 done, 2 pending"
    md = (sweep / "report.md").read_text()
    assert "27.50 ± n/a (1)" in md and "one seed gives no interval" in md
    (diff,) = report.differences
    assert diff.paired.seeds.n == 1 and diff.paired.significant is None
    assert diff.paired.verdict() == "no interval (1 seed)"
    assert "| no interval (1 seed) |" in md
    assert summarize([1.5]).text() == "1.50 ± n/a (1)" and summarize([]).n == 0


# ----------------------------------------------------------------------------------------- differences


def test_paired_differences_significant_and_not(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sweep", {"none": NONE, "flow": FLOW, "deform": DEFORM})
    assert main([f"sweep_dir={sweep}", "baseline={alignment:none}"]) == 0
    rows = {r["cell"]: r for r in read_csv(sweep / "report_differences.csv")}
    assert set(rows) == {"alignment=flow", "alignment=deform"}
    flow, deform = rows["alignment=flow"], rows["alignment=deform"]
    assert (flow["baseline"], flow["metric"], flow["seeds"], flow["clips"]) == (
        "alignment=none",
        "best val PSNR",
        "3",
        "",
    )
    flow_hw = T3 * 0.05 / math.sqrt(3)  # 0.124: the cells' own intervals (0.50, 0.62) overlap
    assert number(flow["mean"]) == pytest.approx(0.35, abs=1e-9)
    assert number(flow["std"]) == pytest.approx(0.05, abs=1e-9)
    assert number(flow["ci95"]) == pytest.approx(flow_hw, rel=1e-6)
    assert number(flow["ci95 low"]) == pytest.approx(0.35 - flow_hw, rel=1e-6)
    assert flow["significant"] == "true"
    deform_hw = T3 * 0.25 / math.sqrt(3)
    assert number(deform["mean"]) == pytest.approx(0.05, abs=1e-9)
    assert number(deform["ci95"]) == pytest.approx(deform_hw, rel=1e-6)
    assert deform["significant"] == "false"
    md = (sweep / "report.md").read_text()
    assert (
        f"| alignment=deform | alignment=none | best val PSNR | 3 | — | +0.050 | [{0.05 - deform_hw:+.3f}, "
        in md
    )
    assert md.count("| not significant |") == 1 and md.count("| significant |") == 1
    # full key names work too, and pairing is by seed, not by position
    report = write_report(sweep, tmp_path / "out", baseline=f"{ALIGN}=none")
    assert [d.paired.significant for d in report.differences] == [True, False]


def test_pairing_by_seed_ignores_unmatched_seeds() -> None:
    paired = paired_over_seeds({"0": 1.0, "1": 2.0, "2": 5.0}, {"1": 1.5, "0": 0.5, "7": 9.0})
    assert paired.seeds.n == 2 and paired.seeds.mean == pytest.approx(0.5) and paired.seeds.std == 0.0
    assert paired.significant is True  # two identical differences: an interval of width 0
    assert paired_over_seeds({"0": 1.0}, {"1": 1.0}).verdict() == "no common seed"


def test_paired_by_seed_and_clip(tmp_path: Path) -> None:
    base = [
        {"calendar": 24.0, "city": 26.0},
        {"calendar": 24.5, "city": 26.5},
        {"calendar": 23.5, "city": 25.5},
    ]
    diffs = [(0.1, 0.3), (0.2, 0.4), (0.3, 0.5)]  # per seed means 0.2, 0.3, 0.4
    cell = [
        {"calendar": b["calendar"] + d[0], "city": b["city"] + d[1]} for b, d in zip(base, diffs, strict=True)
    ]
    extra = [{**b, "walk": 30.0} for b in cell]  # a clip the baseline lacks is not paired
    sweep = seed_sweep(
        tmp_path / "sweep",
        {"none": [27.0, 27.1, 27.2], "flow": [27.1, 27.2, 27.3]},
        clips={"none": base, "flow": extra},
    )
    report = write_report(sweep, baseline="alignment=none")
    test = next(d for d in report.differences if d.metric == "test PSNR")
    assert test.by_clip and test.paired.clips == 2
    seeds, pairs = test.paired.seeds, test.paired.pairs
    assert seeds.n == 3 and seeds.mean == pytest.approx(0.3) and seeds.std == pytest.approx(0.1)
    assert seeds.half_width == pytest.approx(T3 * 0.1 / math.sqrt(3), rel=1e-6)
    assert pairs is not None and pairs.n == 6 and pairs.mean == pytest.approx(0.3)
    flat = [0.1, 0.3, 0.2, 0.4, 0.3, 0.5]
    assert pairs.half_width == pytest.approx(half_width(T6, flat), rel=1e-6)
    assert pairs.half_width < seeds.half_width  # the clip level is narrower: it must not decide
    row = next(r for r in read_csv(sweep / "report_differences.csv") if r["metric"] == "test PSNR")
    assert (row["seeds"], row["clips"], row["pairs"], row["significant"]) == ("3", "2", "6", "true")
    cells = {r["cell"]: r for r in read_csv(sweep / "report_cells.csv")}
    assert number(cells["alignment=none"]["test PSNR mean"]) == pytest.approx(25.0)
    md = (sweep / "report.md").read_text()
    assert "| alignment=flow | alignment=none | test PSNR | 3 | 2 | +0.300 |" in md
    assert "clips of one seed share that training run's noise" in md


def test_seed_level_decides_when_clips_alone_look_significant() -> None:
    # every clip agrees within a seed, but the seeds disagree: (seed, clip) excludes 0, seeds do not
    cell = {s: {f"c{i}": d for i in range(10)} for s, d in (("0", 0.4), ("1", -0.1), ("2", 0.15))}
    base = {s: {f"c{i}": 0.0 for i in range(10)} for s in ("0", "1", "2")}
    paired = paired_over_clips(cell, base)
    assert paired.pairs is not None and not paired.pairs.contains(0.0)
    assert paired.seeds.contains(0.0) and paired.verdict() == "not significant"


def test_unknown_baseline_key_fails_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = seed_sweep(tmp_path / "sweep", {"none": NONE, "flow": FLOW})
    for baseline, message in (("{lr:1}", "'lr' is not a swept key"), ("alignment", "key=value")):
        with pytest.raises(SystemExit) as info:
            main([f"sweep_dir={sweep}", f"baseline={baseline}"])
        assert info.value.code == 1 and message in capsys.readouterr().err
    assert not (sweep / "report.md").exists()


# ----------------------------------------------------------------------------------------- G x N with seeds


def gn_seed_sweep(
    sweep: Path, psnr: dict[tuple[int, int], list[float]], params: dict[tuple[int, int], int]
) -> Path:
    jobs = [
        (f"deformable_groups={g},num_offsets={n},seed={s}", {G_KEY: str(g), N_KEY: str(n), "seed": str(s)})
        for (g, n), values in psnr.items()
        for s in range(len(values))
    ]
    write_manifest(sweep, jobs, [G_KEY, N_KEY, "seed"])
    for subdir, swept in jobs:
        gn = (int(swept[G_KEY]), int(swept[N_KEY]))
        value = psnr[gn][int(swept["seed"])]
        write_job(
            sweep, subdir, metrics_data=metrics(value, params=params[gn], diversity=0.1 * gn[0]), done=True
        )
    return sweep


def test_gn_grid_over_seeds(tmp_path: Path) -> None:
    import matplotlib.image

    psnr = {
        (1, 1): [27.0, 27.2, 27.4],
        (1, 2): [27.1, 27.3, 27.5],  # +0.1 on every seed
        (2, 1): [27.3, 27.2, 27.7],  # +0.3, 0.0, +0.3
        (2, 2): [27.6, 27.6, 27.6],
    }
    params = {(1, 1): 1_000_000, (1, 2): 1_500_000, (2, 1): 1_200_000, (2, 2): 2_000_000}
    sweep = gn_seed_sweep(tmp_path / "sweep", psnr, params)
    report: Report = write_report(sweep)
    for name in ("heatmap_psnr.png", "heatmap_gain_per_mparam.png"):
        assert matplotlib.image.imread(sweep / name).shape[0] > 50
    md = (sweep / "report.md").read_text()
    hw11, hw21 = half_width(T3, psnr[(1, 1)]), half_width(T3, psnr[(2, 1)])
    assert f"| G=1 | 27.20 ± {hw11:.2f} | 27.30 ± {hw11:.2f} |" in md
    assert f"| G=2 | 27.40 ± {hw21:.2f} | 27.60 ± 0.00 |" in md
    # gain: seed-paired difference to G = N = 1 over the extra parameters (M)
    d21 = [0.3, 0.0, 0.3]
    gain21, gain21_hw = (sum(d21) / 3) / 0.2, half_width(T3, d21) / 0.2
    assert f"| G=1 | — | {0.1 / 0.5:.3f} ± 0.000 |" in md
    assert f"| G=2 | {gain21:.3f} ± {gain21_hw:.3f} |" in md
    # the automatic baseline of a G x N sweep with seeds is G = N = 1
    assert "the G = N = 1 cell" in md
    by_cell = {d.cell: d for d in report.differences}
    assert set(by_cell) == {"deformable_groups=1,num_offsets=2", "deformable_groups=2,num_offsets=1",
                            "deformable_groups=2,num_offsets=2"}  # fmt: skip
    assert by_cell["deformable_groups=1,num_offsets=2"].paired.significant is True
    assert by_cell["deformable_groups=2,num_offsets=1"].paired.verdict() == "not significant"
    assert write_report(sweep, tmp_path / "off", baseline="none").differences == []


# ----------------------------------------------------------------------------------------- correlation


def test_fisher_interval_by_hand() -> None:
    div = [0.10, 0.25, 0.32, 0.51, 0.60]
    psnr = [27.00, 27.31, 27.20, 27.58, 27.49]
    corr = pearson_correlation(div, psnr)
    r = float(np.corrcoef(div, psnr)[0, 1])
    low, high = math.tanh(math.atanh(r) - Z / math.sqrt(2)), math.tanh(math.atanh(r) + Z / math.sqrt(2))
    assert corr.interval == pytest.approx((low, high), rel=1e-9)
    assert f"95% CI [{low:.3f}, {high:.3f}] (Fisher z)" in corr.sentence()
    three = pearson_correlation(div[:3], psnr[:3])
    assert three.interval is None and "95% CI undefined for n <= 3" in three.sentence()
    assert fisher_interval(0.5, 3) is None and fisher_interval(1.0, 10) == (1.0, 1.0)


def test_correlation_of_cell_means_warns_within_noise(tmp_path: Path) -> None:
    # cell means 27.200, 27.201, 27.202, 27.203 (0.003 dB apart) with a seed std of 0.2 dB
    psnr = {f"a{i}": [v + 0.001 * i for v in NONE] for i in range(4)}
    diversity = {f"a{i}": 0.1 * (i + 1) for i in range(4)}
    sweep = seed_sweep(tmp_path / "sweep", psnr, diversity=diversity)
    report = write_report(sweep)
    corr = report.correlation
    assert corr.n == 4 and corr.unit == "cells" and corr.r == pytest.approx(1.0)
    assert corr.noise is not None and corr.noise.startswith("warning: ")
    hw = T3 * 0.2 / math.sqrt(3)
    assert (
        f"span 0.003 dB, less than a cell's typical 95% half-width ({hw:.3f} dB; seed std 0.200 dB)"
        in corr.noise
    )
    md = (sweep / "report.md").read_text()
    assert "4 cells), 95% CI [" in md and "within noise" in md
    # 1 dB apart: no warning
    apart = {f"a{i}": [v + 1.0 * i for v in NONE] for i in range(4)}
    corr = write_report(seed_sweep(tmp_path / "apart", apart, diversity=diversity)).correlation
    assert corr.noise is not None and not corr.noise.startswith("warning") and "more than" in corr.noise


def test_correlation_without_seeds_says_noise_is_unknown(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_manifest(sweep, [(f"j{i}", {"arch.x": str(i)}) for i in range(4)], ["arch.x"])
    for i in range(4):
        write_job(
            sweep, f"j{i}", done=True, metrics_data=metrics(27.0 + 0.001 * i, params=1, diversity=0.1 * i)
        )
    corr = write_report(sweep).correlation
    assert corr.unit == "jobs" and corr.interval is not None
    assert corr.noise == (
        "PSNR spans 0.003 dB over these jobs; with one job per configuration the seed noise is unknown: "
        "sweep `seed` (>= 3 seeds) to tell signal from noise."
    )


# ----------------------------------------------------------------------------------------- motion bins


def motion_bins(psnr: list[float]) -> dict[str, Any]:
    edges = [0.0, 2.0, math.inf]
    overall = [
        {"lo": lo, "hi": hi, "psnr": p, "psnr_bicubic": 25.0, "ssim": 0.8, "pixels": 100, "ssim_pixels": 50}
        for lo, hi, p in zip(edges, edges[1:], psnr, strict=False)
    ]
    return {"edges": edges, "flow": "batch", "definition": "test", "overall": overall, "clips": {}}


def test_motion_bins_over_seeds(tmp_path: Path) -> None:
    import matplotlib.image

    sweep = seed_sweep(tmp_path / "sweep", {"none": NONE, "flow": FLOW})
    bins = {
        "none": [[30.0, 25.0], [30.2, 25.1], [30.4, 25.2]],
        "flow": [[30.1, 26.0], [30.3, 26.3], [30.5, 26.6]],
    }
    for name, per_seed in bins.items():
        for seed, values in enumerate(per_seed):
            data = metrics(NONE[seed], params=1000)
            data["test"] = {"motion_bins": motion_bins(values)}
            write_job(tmp_path / "sweep", f"alignment={name},seed={seed}", metrics_data=data, done=True)
    main([f"sweep_dir={sweep}"])
    md = (sweep / "report.md").read_text()
    assert "| alignment=flow, seed=1 | 30.30 | 26.30 |" in md  # the per-job table stays
    hw = T3 * 0.2 / math.sqrt(3)
    assert f"| alignment=none | 30.20 ± {hw:.2f} (3) | 25.10 ± {T3 * 0.1 / math.sqrt(3):.2f} (3) |" in md
    # gains paired by seed: [0.1, 0.1, 0.1] and [1.0, 1.2, 1.4]
    gain_hw = T3 * 0.2 / math.sqrt(3)
    assert f"| alignment=flow vs none | +0.10 ± 0.00 (3) | +1.20 ± {gain_hw:.2f} (3) |" in md
    for name in ("motion_psnr.png", "motion_gain.png"):
        assert matplotlib.image.imread(sweep / name).shape[0] > 100


# ------------------------------------------------------------------------------ unchanged without seeds


def test_sweep_without_seed_axis_keeps_its_files(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_manifest(sweep, [("a", {"model.lr": "1e-4"}), ("b", {"model.lr": "2e-4"})], ["model.lr"])
    write_job(sweep, "a", metrics_data=metrics(27.0, params=10), done=True)
    write_job(sweep, "b", metrics_data=metrics(27.5, params=10), done=True)
    report = write_report(sweep)
    assert report.cells is None and report.differences == []
    assert not (sweep / "report_cells.csv").exists() and not (sweep / "report_differences.csv").exists()
    header = (sweep / "report.csv").read_text().splitlines()[0]
    assert header == (
        "job,lr,params,best val PSNR,best val SSIM,best step,final val PSNR,final val SSIM,"
        "offset diversity,steps,pre-emptions,status"
    )
    md = (sweep / "report.md").read_text()
    assert "±" not in md and "## Jobs" not in md and "| a | 1e-4 | 10 | 27.00 |" in md
    # an explicit baseline still compares the jobs, one (unknown) seed each
    report = write_report(sweep, tmp_path / "out", baseline="lr=1e-4")
    (diff,) = report.differences
    assert diff.paired.seeds.mean == pytest.approx(0.5) and diff.paired.verdict() == "no interval (1 seed)"


def test_test_psnr_column_when_jobs_were_tested(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_manifest(sweep, [("a", {"model.lr": "1"}), ("b", {"model.lr": "2"})], ["model.lr"])
    data = metrics(27.0, params=10)
    data["test"] = {"clips": {"x": {"psnr": 26.0}, "y": {"psnr": 28.0}}, "mean": {"psnr": 26.9}}
    write_job(sweep, "a", metrics_data=data, done=True)
    write_job(sweep, "b", metrics_data={"clips": {"x": {"psnr": 25.0}}}, done=True)  # an evaluation's layout
    main([f"sweep_dir={sweep}"])
    rows = read_csv(sweep / "report.csv")
    assert [r["test PSNR"] for r in rows] == ["26.9", "25.0"]
    assert list(rows[0])[list(rows[0]).index("final val SSIM") + 1] == "test PSNR"


# ----------------------------------------------------------------------------------------- end to end


def test_vsrlab_report_end_to_end(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sweep", {"none": NONE, "flow": FLOW, "deform": DEFORM})
    exe = Path(sys.executable).parent / "vsrlab-report"
    done = subprocess.run(
        [str(exe), f"sweep_dir={sweep}", "baseline={alignment:none}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    md = (sweep / "report.md").read_text()
    assert "| cell | alignment | seeds | params | best val PSNR |" in md
    assert f"| 27.20 ± {T3 * 0.2 / math.sqrt(3):.2f} (3) |" in md
    assert "| not significant |" in md and "| significant |" in md
    assert "alignment=deform - alignment=none (best val PSNR): +0.050 dB" in done.stdout
    assert "not significant" in done.stdout
