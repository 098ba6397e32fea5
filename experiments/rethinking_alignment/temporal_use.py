"""How much each trained model of the sweep uses its neighbour frames: test PSNR per motion bin of the
network on its 5-frame windows (with the true flows, as tested) and on windows made of the centre frame
alone (zero flow): single-image SR with the same weights. Their difference is what the neighbours add.

    python experiments/rethinking_alignment/temporal_use.py <sweep dir> [<sweep dir> ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vsrlab.metrics.motion import BinSums, bin_scores, frame_bin_sums, motion_to_hr, neighbour_motion
from vsrlab.models import VSRModule
from vsrlab.ops.resize import matlab_imresize_tensor
from vsrlab.utils.images import to_uint8_hwc


def job_scores(job: Path) -> dict[str, list[dict]]:
    cfg = OmegaConf.load(job / "resolved_config.yaml")
    ckpt = json.loads((job / "metrics.json").read_text())["best"]["ckpt_path"]  # the checkpoint tested
    model = VSRModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False).eval()
    net, scale = model.evaluation_net("test"), int(cfg.arch.upscale)
    edges = list(cfg.model.evaluation.motion_bins.edges)
    data = instantiate(cfg.data.test)
    sums = {"windows": BinSums.zeros(len(edges) - 1), "centre only": BinSums.zeros(len(edges) - 1)}
    for i in range(len(data)):
        sample = data[i]
        lq, gt = sample["lq"], sample["gt"]
        motion = neighbour_motion(sample["flow_prev"], sample["flow_next"]).numpy()
        with torch.no_grad():
            outputs = {
                "windows": model.predict_clip(lq, flow_pairs=sample["flow_pairs"]),
                "centre only": torch.cat(
                    [
                        net(x, flows=x.new_zeros(x.shape[0], x.shape[1], 2, *x.shape[-2:]))
                        for x in lq[:, None].expand(-1, net.num_frame, -1, -1, -1).split(8)
                    ]
                ),
            }
        bicubic = to_uint8_hwc(matlab_imresize_tensor(lq, scale))
        for name, out in outputs.items():
            for t, (o, b, g) in enumerate(zip(to_uint8_hwc(out), bicubic, to_uint8_hwc(gt), strict=True)):
                sums[name] = sums[name] + frame_bin_sums(o, b, g, motion_to_hr(motion[t], scale), edges)
    return {name: bin_scores(s, edges) for name, s in sums.items()}


def main(sweeps: list[Path]) -> None:
    for sweep in sweeps:
        for job in sorted(p for p in sweep.iterdir() if (p / "done").is_file()):
            scores = job_scores(job)
            labels = [f"{b['lo']:g}-{b['hi']:g}" for b in scores["windows"]]
            print(f"\n{sweep.name}/{job.name}\n")
            print("| input | " + " | ".join(labels) + " |")
            print("| --- | " + " | ".join("---:" for _ in labels) + " |")
            for name, bins in scores.items():
                print(
                    f"| {name} | "
                    + " | ".join("-" if b["psnr"] is None else f"{b['psnr']:.2f}" for b in bins)
                    + " |"
                )
            gain = [
                "-" if a["psnr"] is None else f"{a['psnr'] - b['psnr']:+.3f}"
                for a, b in zip(scores["windows"], scores["centre only"], strict=True)
            ]
            print("| neighbours add | " + " | ".join(gain) + " |", flush=True)


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
