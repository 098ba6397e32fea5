"""Can the benchmark's offset predictor learn the flow at all, given the flow as its target? (README.md here,
"Why learned alignment does not get there").

Trains SlidingWindowVSR's offset path alone (features + offset predictor, G = N = 1, free offsets) with an L1
loss between its offsets and the TRUE flow of the benchmark's training windows (bicubic_noaa, speeds 0-12 LR
px/frame, batch 8, Adam 2e-3), and reports the end-point error on test clips at 1, 2 and 4 px/frame (4 each,
the 4 neighbours of each clip's middle window), for three predictors: the benchmark's (two 3x3 convolutions on
the concatenated features), with two coarser levels (sees +-28 px), and with those levels and a cost volume
(the features' correlation, radius 3 at 3 scales):

    python experiments/alignment_benchmark/offset_probe.py [--steps 300] [--out probe.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from vsrlab.archs import SlidingWindowVSR
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.ops import record_offsets

PREDICTORS = {"benchmark": {}, "levels3": {"offset_levels": 3},
              "levels3_cost_volume": {"offset_levels": 3, "cost_volume_radius": 3}}  # fmt: skip


def offsets_xy(net: SlidingWindowVSR, lq: torch.Tensor) -> torch.Tensor:
    """The offsets of every frame of ``lq`` ``(B, T, 3, h, w)`` as ``(B, T, 2, h, w)`` flow, ``(x, y)``."""
    with record_offsets(net) as calls:
        net(lq)
    ((offset,),) = calls.values()
    b, t, _, h, w = lq.shape
    return offset.view(b, t, 2, h, w).flip(2)


def end_point_error(net: SlidingWindowVSR, test: SyntheticVideoDataset) -> dict[float, float]:
    errors: dict[float, list[float]] = {}
    with torch.no_grad():
        for i in range(len(test)):
            sample = test[i]
            window = slice(1, 6)  # the 5-frame window around the middle frame of a 7-frame clip
            flow = sample["flow_pairs"][window, window][2]
            error = (offsets_xy(net, sample["lq"][window][None])[0] - flow).norm(dim=1)[[0, 1, 3, 4]]
            errors.setdefault(test.strata.speed(i), []).append(float(error.mean()))
    return {speed: sum(v) / len(v) for speed, v in errors.items()}


def probe(name: str, steps: int, every: int) -> list[dict]:
    torch.manual_seed(0)
    train = SyntheticVideoDataset("train", num_clips=10**6, num_frames=5, lq_size=(32, 32), seed=0,
                                  motion={"preset": "translation", "speed": [0, 12]},
                                  degradation="bicubic_noaa", flow_pairs=False)  # fmt: skip
    test = SyntheticVideoDataset("test", num_frames=7, lq_size=(48, 48), seed=0,
                                 motion={"preset": "translation"}, speeds=[1, 2, 4], clips_per_speed=4,
                                 degradation="bicubic_noaa")  # fmt: skip
    net = SlidingWindowVSR(num_frame=5, deformable_groups=1, num_offsets=1, offset_base="zero",
                           modulated=False, **PREDICTORS[name])  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), 2e-3)
    rows, start, batches = [], time.time(), iter(DataLoader(train, batch_size=8))
    for step in range(steps + 1):
        if step % every == 0:
            rows.append({"predictor": name, "step": step, "epe_px": end_point_error(net, test),
                         "seconds": round(time.time() - start)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        if step == steps:
            break
        batch = next(batches)
        loss = (offsets_xy(net, batch["lq"]) - batch["flow"]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--out", default="probe.json")
    args = parser.parse_args()
    rows = [row for name in PREDICTORS for row in probe(name, args.steps, args.every)]
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
