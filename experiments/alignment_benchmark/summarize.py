"""Tables, gates and the figure of the alignment benchmark (README.md here) from its sweep and the oracle's
evaluation:

    python experiments/alignment_benchmark/summarize.py <sweep dir> <oracle eval dir> [--out DIR]

Per row of conf/row/alignment_benchmark and seed: the test PSNR of every clip (metrics.json) and, for the
rows with learned offsets, the offsets against the true flow (vsrlab.analysis.offsets.run_offsets) on test
clips.
Differences to the ``centre`` row are paired by seed and clip (vsrlab.report.stats.paired_over_clips); the
verdict is taken at the seed level.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from vsrlab.analysis.offsets import run_offsets  # noqa: E402
from vsrlab.models import VSRModule  # noqa: E402
from vsrlab.report.stats import paired_over_clips, summarize  # noqa: E402

ROWS = [
    "centre",
    "true_flow",
    "true_flow_image",
    "none",
    "learned_flow",
    "dcn",
    "flow_guided_dcn",
    "flow_guided_n1",
    "flow_guided_dcn_err1",
    "flow_guided_n1_err1",
    "dcn_fidelity",
    "dcn_high_lr",
    "dcn_fidelity_high_lr",
]
LEARNED = ROWS[ROWS.index("learned_flow") :]  # the rows whose offsets are learned
# differences between two rows (paired by seed and clip): name -> (row, minus row, what it tests)
COMPARISONS = {
    "image_minus_feature": ("true_flow_image", "true_flow", "image minus feature warping, both by the "
                            "true flow (UDA Table 4: -0.84 dB on REDS4)"),
    "flow_guided_minus_dcn": ("flow_guided_dcn", "dcn",
                              "flow-guided minus plain DCN, G = 4 x N = 9 (BasicVSR++: flow guidance helps)"),
    "n9_minus_n1_exact": ("flow_guided_dcn", "flow_guided_n1", "N = 9 minus N = 1 around the exact flow"),
    "n9_minus_n1_err1": ("flow_guided_dcn_err1", "flow_guided_n1_err1",
                         "N = 9 minus N = 1 around a flow wrong by 1 px RMS "
                         "(UDA Section 4.2: diversity helps)"),
    "fidelity_minus_plain": ("dcn_fidelity", "dcn", "DCN with minus without the offset-fidelity loss "
                             "(UDA Table 3: +1.73 dB on REDS4)"),
    "fidelity_minus_plain_high_lr": ("dcn_fidelity_high_lr", "dcn_high_lr", "the same at 5x the learning "
                                     "rate (UDA Fig. 10: offsets overflow without the loss)"),
}  # fmt: skip
GATES = {"true_flow": 1.0, "learned": 0.5}  # dB over the centre row (issue 23)
OFFSET_KEY = "offsets/abs_mean_max"
OFFSET_CLIPS = {1.0: 4, 2.0: 4, 4.0: 4}  # speed (LR px/frame): test clips whose offsets are measured
JOB = re.compile(r"(?:bench_variant|alignment_benchmark)=(?P<row>[a-z0-9_]+),seed=(?P<seed>\d+)")


def speed_of(clip: str) -> float:
    return float(clip.split("_")[1].removeprefix("speed"))


def load_jobs(sweep: Path) -> dict[str, dict[int, Path]]:
    jobs: dict[str, dict[int, Path]] = defaultdict(dict)
    for job in sorted(sweep.iterdir()):
        m = JOB.fullmatch(job.name)
        if m and (job / "metrics.json").is_file():
            jobs[m["row"]][int(m["seed"])] = job
    return jobs


def test_clips(job: Path) -> dict[str, dict[str, float]]:
    metrics = json.loads((job / "metrics.json").read_text())
    return (metrics["test"] if "test" in metrics else metrics)["clips"]


def gains(clips: dict[str, dict[str, float]]) -> dict[str, float]:
    return {c: v["psnr"] - v["psnr_bicubic"] for c, v in clips.items()}


def by_speed(values: dict[str, float]) -> dict[float, float]:
    groups: dict[float, list[float]] = defaultdict(list)
    for clip, v in values.items():
        groups[speed_of(clip)].append(v)
    return {s: math.fsum(v) / len(v) for s, v in sorted(groups.items())}


def offset_errors(job: Path) -> dict[str, float]:
    """Mean end-point error (px) of the offsets closest to the true flow and the fraction under 1 px, over
    the neighbours of the test clips of :data:`OFFSET_CLIPS` (the window of each clip's middle frame)."""
    cfg = OmegaConf.load(job / "resolved_config.yaml")
    ckpt = json.loads((job / "metrics.json").read_text())["best"]["ckpt_path"]
    model = VSRModule.load_from_checkpoint(ckpt, map_location="cpu")
    net = model.evaluation_net("test").eval()
    data = instantiate(cfg.data.test)
    errors, under = [], []
    for speed, count in OFFSET_CLIPS.items():
        indices = [i for i in range(len(data)) if data.strata.speed(i) == speed][:count]
        for i in indices:
            sample = data[i]
            lq, centre = sample["lq"], sample["lq"].shape[0] // 2
            window = slice(centre - net.num_frame // 2, centre + net.num_frame // 2 + 1)
            clip = {"lq": lq[window], "flow_pairs": sample["flow_pairs"][window, window]}
            clip["flow"], clip["flow_valid"] = sample["flow_pairs"][window, window][net.num_frame // 2], None
            with tempfile.TemporaryDirectory() as out, torch.no_grad():
                result = run_offsets(net, clip, out, max_offsets_drawn=1)
            for frames in result["modules"].values():
                for numbers in frames.values():
                    cmp = numbers["flow_comparison"]
                    per_group = [min(o["error_mean_px"] for o in group) for group in cmp["per_offset"]]
                    errors.append(math.fsum(per_group) / len(per_group))
                    closest = cmp["fraction_under_1px_closest"]
                    under.append(cmp["fraction_under_1px"] if closest is None else closest)
    return {"epe_px": math.fsum(errors) / len(errors), "under_1px": math.fsum(under) / len(under)}


def offset_magnitude(job: Path) -> dict[str, float] | None:
    """The training's mean |offset| (px, the largest over alignment modules; callbacks.OffsetMonitor):
    its peak and its last value, from the CSV logger's files; None when it was not logged."""
    values = []
    for path in sorted(job.glob("csv/version_*/metrics.csv")):
        with path.open(newline="") as f:
            values += [float(r[OFFSET_KEY]) for r in csv.DictReader(f) if r.get(OFFSET_KEY)]
    return {"peak_px": max(values), "last_px": values[-1]} if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("oracle", type=Path, help="vsrlab-eval run directory of arch=oracle")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    jobs = load_jobs(args.sweep)
    oracle = gains(test_clips(args.oracle))
    scores = {row: {s: test_clips(j) for s, j in jobs[row].items()} for row in ROWS if row in jobs}
    gain = {row: {s: gains(c) for s, c in per.items()} for row, per in scores.items()}
    psnr = {
        row: {s: {c: v["psnr"] for c, v in clips.items()} for s, clips in per.items()}
        for row, per in scores.items()
    }
    speeds = sorted(by_speed(oracle))
    results: dict = {
        "rows": {},
        "oracle": {"gain_db": math.fsum(oracle.values()) / len(oracle), "gain_by_speed": by_speed(oracle)},
    }
    for row, per in gain.items():
        mean_gain = summarize(math.fsum(g.values()) / len(g) for g in per.values())
        mean_psnr = summarize(math.fsum(p.values()) / len(p) for p in psnr[row].values())
        vs_centre = paired_over_clips(psnr[row], psnr["centre"]) if row != "centre" else None
        per_speed = {}
        for speed in speeds:
            pick = {s: {c: v for c, v in p.items() if speed_of(c) == speed} for s, p in psnr[row].items()}
            base = {
                s: {c: v for c, v in p.items() if speed_of(c) == speed} for s, p in psnr["centre"].items()
            }
            per_speed[speed] = paired_over_clips(pick, base).seeds if row != "centre" else None
        gain_speed = {sp: summarize(by_speed(g)[sp] for g in per.values()) for sp in speeds}
        results["rows"][row] = {
            "seeds": sorted(per),
            "psnr": mean_psnr.__dict__,
            "gain_over_bicubic": mean_gain.__dict__,
            "gain_by_speed": {sp: s.__dict__ for sp, s in gain_speed.items()},
            "over_centre": None
            if vs_centre is None
            else {"seeds": vs_centre.seeds.__dict__, "verdict": vs_centre.verdict()},
            "over_centre_by_speed": {sp: (None if s is None else s.__dict__) for sp, s in per_speed.items()},
        }
    for row in LEARNED:
        if row in jobs:
            per_seed = {s: offset_errors(j) for s, j in sorted(jobs[row].items())}
            results["rows"][row]["offsets"] = {
                k: summarize(v[k] for v in per_seed.values()).__dict__ for k in ("epe_px", "under_1px")
            }
            sizes = [m for m in (offset_magnitude(j) for j in jobs[row].values()) if m is not None]
            if sizes:
                results["rows"][row]["offset_size"] = {
                    k: summarize(m[k] for m in sizes).__dict__ for k in ("peak_px", "last_px")
                }
    results["comparisons"] = {}
    for name, (row, base, _) in COMPARISONS.items():
        if {row, base} <= set(psnr):
            diff = paired_over_clips(psnr[row], psnr[base])
            by_speed_diff = {}
            for speed in speeds:
                pick = {r: {s: {c: v for c, v in p.items() if speed_of(c) == speed}
                            for s, p in psnr[r].items()} for r in (row, base)}  # fmt: skip
                by_speed_diff[speed] = paired_over_clips(pick[row], pick[base]).seeds.__dict__
            results["comparisons"][name] = {"seeds": diff.seeds.__dict__, "verdict": diff.verdict(),
                                            "by_speed": by_speed_diff}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (args.out / "results.md").write_text(tables(results, speeds) + "\n")
    figure(results, speeds, args.out / "gain_by_speed.png")
    print(tables(results, speeds))


def fmt(s: dict | None, spec: str = "+.2f") -> str:
    if not s or s["mean"] is None:
        return "—"
    hw = "n/a" if s["half_width"] is None else format(s["half_width"], ".2f")
    return f"{format(s['mean'], spec)} ± {hw}"


def tables(results: dict, speeds: list[float]) -> str:
    rows = results["rows"]
    lines = [
        "| row | seeds | test PSNR (dB) | gain over bicubic | over centre (seed-level 95% CI) | verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| oracle (true flow, no training) | — | — | {results['oracle']['gain_db']:+.2f} | — | — |",
    ]
    for row, r in rows.items():
        over = r["over_centre"]
        verdict = "" if over is None else over["verdict"]
        lines.append(
            f"| {row} | {len(r['seeds'])} | {fmt(r['psnr'], '.2f')} | {fmt(r['gain_over_bicubic'])} | "
            f"{fmt(over and over['seeds'])} | {verdict} |"
        )
    lines += [
        "",
        "Gain over the centre row by speed (LR px/frame; mean ± 95% CI over seeds, paired by clip):",
        "",
        "| row | " + " | ".join(f"{s:g}" for s in speeds) + " |",
        "| --- |" + " ---: |" * len(speeds),
    ]
    oracle_line = "| oracle − bicubic | " + " | ".join(
        f"{results['oracle']['gain_by_speed'][s]:+.2f}" for s in speeds
    )
    lines.append(oracle_line + " |")
    for row, r in rows.items():
        if row != "centre":
            lines.append(f"| {row} | " + " | ".join(fmt(r["over_centre_by_speed"][s]) for s in speeds) + " |")
    for name, d in results.get("comparisons", {}).items():
        lines += ["", f"{COMPARISONS[name][2][0].upper()}{COMPARISONS[name][2][1:]}: {fmt(d['seeds'])} dB "
                  f"({d['verdict']}); by speed:", "",
                  "| " + " | ".join(f"{s:g}" for s in speeds) + " |", "|" + " ---: |" * len(speeds),
                  "| " + " | ".join(fmt(d["by_speed"][s]) for s in speeds) + " |"]  # fmt: skip
    lines += ["", "Gates (issue 23):", ""]
    for name, need in GATES.items():
        cands = ["true_flow"] if name == "true_flow" else [r for r in ("learned_flow", "dcn") if r in rows]
        for row in cands:
            over = rows.get(row, {}).get("over_centre")
            if over:
                mean = over["seeds"]["mean"]
                lines.append(
                    f"- {row} over centre: {fmt(over['seeds'])} dB, needs >= {need:g}: "
                    f"{'met' if mean >= need else 'NOT met'}"
                )
    lines += [
        "",
        "Learned offsets against the true flow (test clips at 1, 2, 4 px/frame, 4 each; closest offset "
        "of each group; mean ± 95% CI over seeds):",
        "",
        "| row | EPE (px) | fraction under 1 px | training mean abs offset: peak (px) | last (px) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in LEARNED:
        if "offsets" in rows.get(row, {}):
            o, size = rows[row]["offsets"], rows[row].get("offset_size") or {}
            lines.append(
                f"| {row} | {fmt(o['epe_px'], '.2f')} | {fmt(o['under_1px'], '.2f')} | "
                f"{fmt(size.get('peak_px'), '.2f')} | {fmt(size.get('last_px'), '.2f')} |"
            )
    return "\n".join(lines)


def figure(results: dict, speeds: list[float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(len(speeds)))
    ax.plot(x, [results["oracle"]["gain_by_speed"][s] for s in speeds], "k--", label="oracle (true flow)")
    for row, r in results["rows"].items():
        g = [r["gain_by_speed"][s] for s in speeds]
        ax.errorbar(
            x,
            [v["mean"] for v in g],
            yerr=[v["half_width"] or 0 for v in g],
            marker="o",
            capsize=3,
            label=row,
        )
    ax.set_xticks(x, [f"{s:g}" for s in speeds])
    ax.set_xlabel("speed (LR px / frame)")
    ax.set_ylabel("test PSNR gain over bicubic (dB)")
    ax.set_title("Alignment benchmark (area x4, 5 frames; 95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
