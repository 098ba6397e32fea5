"""Tables and figure of the x16 study: reads the runs' metrics.json (and the bicubic eval) under a root.

Usage: python experiments/extreme_sr/summarize.py /tmp/xsr [--figure experiments/extreme_sr/levels.png]

Also computes the bicubic reference of every level of the cascade on the same validation clips (the
centre frame of each clip, the LR frame bicubic x2, x4, x8, x16 against the GT bicubic-downscaled to that
size, as ``val/psnr_level<l>`` is measured), so each level's gain can be read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from vsrlab.data import SyntheticVideoDataset
from vsrlab.losses.levels import level_psnr, level_targets
from vsrlab.ops.resize import matlab_imresize_tensor

RUNS = ["dksan_backbone", "dksan_channel_attention", "dksan_dkc_align", "dksan_full", "edvr_x16"]
VAL = dict(split="val", num_clips=4, num_frames=3, lq_size=(8, 8), scale=16, seed=0)


def bicubic_levels() -> tuple[list[float], float]:
    """Mean over the val clips of each level's bicubic PSNR (centre frame), and of the bilinear x16 PSNR
    over every frame (EDVR's base: its output is a residual over the bilinearly upsampled centre frame)."""
    data = SyntheticVideoDataset(**VAL, flow_pairs=False)
    sums, bilinear = [0.0] * 4, 0.0
    for i in range(len(data)):
        item = data[i]
        c = item["lq"].shape[0] // 2
        lq, gt = item["lq"][c : c + 1], item["gt"][c : c + 1]
        ups = [matlab_imresize_tensor(lq, 2**level) for level in (1, 2, 3, 4)]
        targets = level_targets(gt, [tuple(u.shape[-2:]) for u in ups])
        for j, v in enumerate(level_psnr(ups, targets)):
            sums[j] += float(v)
        up = F.interpolate(item["lq"], scale_factor=16, mode="bilinear", align_corners=False)
        mse = (up.clamp(0, 1) - item["gt"]).square().flatten(1).mean(1)
        bilinear += float((10 * torch.log10(1 / mse)).mean())
    return [s / len(data) for s in sums], bilinear / len(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    with torch.no_grad():
        bic, bilinear = bicubic_levels()
    print("bicubic per level (x2, x4, x8, x16):", " / ".join(f"{v:.3f}" for v in bic))
    print(f"bilinear x16 (mean over clips of the mean frame PSNR): {bilinear:.3f}")
    rows = {}
    for name in RUNS:
        path = args.root / "train" / "runs" / name / "metrics.json"
        if not path.exists():
            print(f"{name}: missing")
            continue
        m = json.loads(path.read_text())
        val, hist = m["val"], {h["step"]: h["psnr"] for h in m["val_history"]}
        rows[name] = m
        levels = [val.get(f"val/psnr_level{i}") for i in (1, 2, 3, 4)]
        lv = " / ".join("-" if v is None else f"{v:.3f}" for v in levels)
        print(f"| {name} | {m['params']['total']:,} | {hist} | {val['val/psnr']:.3f} | "
              f"{val['val/psnr'] - val['val/psnr_bicubic']:+.3f} | {lv} |")  # fmt: skip
    if args.figure and rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        x = [1, 2, 3, 4]
        ax.plot(x, [0] * 4, "k--", lw=1, label="bicubic")
        for name, m in rows.items():
            if "val/psnr_level1" not in m["val"]:
                continue
            gains = [m["val"][f"val/psnr_level{i}"] - bic[i - 1] for i in x]
            ax.plot(x, gains, "o-", label=name.removeprefix("dksan_"))
        ax.set_xticks(x, ["x2", "x4", "x8", "x16"])
        ax.set_xlabel("level of the DKSAN cascade")
        ax.set_ylabel("PSNR gain over bicubic (dB)")
        ax.set_title("tiny DKSAN rows, synthetic x16, 400 steps, seed 42", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.figure)
        print("wrote", args.figure)


if __name__ == "__main__":
    main()
