"""The tables of this study's README from the sweeps' run directories (metrics.json, train.log, done):

    python experiments/rethinking_alignment/tables.py <sweep dir> [<sweep dir of another seed> ...]

Per job: overall test PSNR / SSIM, trainable parameters, wall time; per motion bin: PSNR of each job,
bicubic, HR pixels, and the gain of patch alignment over no alignment at the same window (per sweep,
then the mean over the sweeps given).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

ALIGN = {"none": "none", "patch_feature_nearest": "patch"}


def job_key(job: Path) -> tuple[int, str]:
    swept = dict(part.split("=", 1) for part in job.name.split(","))
    return int(swept["window_size"].split("-")[1]), ALIGN[swept["vsrt_alignment"]]


def wall_minutes(job: Path) -> float:
    start = datetime.strptime((job / "train.log").read_text()[1:20], "%Y-%m-%d %H:%M:%S")
    return (datetime.fromtimestamp((job / "done").stat().st_mtime) - start).total_seconds() / 60


def load(sweep: Path) -> dict[tuple[int, str], dict]:
    jobs = {}
    for job in sorted(p for p in sweep.iterdir() if (p / "done").is_file()):
        metrics = json.loads((job / "metrics.json").read_text())
        jobs[job_key(job)] = {
            "metrics": metrics,
            "bins": metrics["test"]["motion_bins"]["overall"],
            "minutes": wall_minutes(job),
        }
    return jobs


def bin_label(b: dict) -> str:
    hi = "inf" if b["hi"] == float("inf") else f"{b['hi']:g}"
    return f"{b['lo']:g}-{hi}"


def main(sweeps: list[Path]) -> None:
    runs = [load(s) for s in sweeps]
    keys = sorted(runs[0])
    print(
        "| window | alignment | sweep | test PSNR | test SSIM | bicubic PSNR | trainable params | wall time |"
    )
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key in keys:
        for sweep, jobs in zip(sweeps, runs, strict=True):
            m, minutes = jobs[key]["metrics"], jobs[key]["minutes"]
            mean = m["test"]["mean"]
            print(
                f"| {key[0]} | {key[1]} | {sweep.name} | {mean['psnr']:.3f} | {mean['ssim']:.4f} | "
                f"{mean['psnr_bicubic']:.3f} | {m['params']['trainable']:,} | {minutes:.1f} min |"
            )
    bins = runs[0][keys[0]]["bins"]
    labels = [bin_label(b) for b in bins]
    print()
    print("| motion (LR px/frame) | " + " | ".join(labels) + " |")
    print("| --- | " + " | ".join("---:" for _ in labels) + " |")
    print("| HR pixels | " + " | ".join(f"{b['pixels']:,}" for b in bins) + " |")
    print(
        "| bicubic PSNR | "
        + " | ".join(f"{b['psnr_bicubic']:.2f}" if b["pixels"] else "-" for b in bins)
        + " |"
    )
    for sweep, jobs in zip(sweeps, runs, strict=True):
        tag = f" ({sweep.name})" if len(sweeps) > 1 else ""
        for key in keys:
            row = [f"{b['psnr']:.2f}" if b["pixels"] else "-" for b in jobs[key]["bins"]]
            print(f"| window {key[0]}, {key[1]}{tag} | " + " | ".join(row) + " |")
    print()
    print("Gain of patch alignment over none, dB (same window):")
    print()
    print("| window | sweep | " + " | ".join(labels) + " |")
    print("| ---: | --- | " + " | ".join("---:" for _ in labels) + " |")
    for window in sorted({k[0] for k in keys}):
        gains = []
        for sweep, jobs in zip(sweeps, runs, strict=True):
            pa, no = jobs[(window, "patch")]["bins"], jobs[(window, "none")]["bins"]
            g = [a["psnr"] - b["psnr"] if a["pixels"] else None for a, b in zip(pa, no, strict=True)]
            gains.append(g)
            print(
                f"| {window} | {sweep.name} | "
                + " | ".join("-" if v is None else f"{v:+.2f}" for v in g)
                + " |"
            )
        if len(gains) > 1:
            mean = [
                None if any(g[i] is None for g in gains) else sum(g[i] for g in gains) / len(gains)
                for i in range(len(labels))
            ]
            print(
                f"| {window} | mean | " + " | ".join("-" if v is None else f"{v:+.2f}" for v in mean) + " |"
            )


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
