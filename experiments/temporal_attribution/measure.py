"""Temporal attribution (issue 14): which neighbouring frames does a detail of the output come from?

For each trained network (vsrlab checkpoints), on ``--clips`` synthetic clips with a static camera and one
moving object (fixed seed), LAM (:func:`vsrlab.analysis.lam.local_attribution_map`) of a few 16x16 output
windows of the centre frame whose LR footprint is entirely static (background: true flow < 0.1 LR px in
every frame of the clip, visible in all of them) or entirely moving (on the object: true flow >= 1.5 LR px
to both neighbours, visible in frames c-2 .. c+2). The same windows are analysed for every network; a
sliding-window network sees the window of frames around the centre frame, a recurrent one the whole clip.
Each input frame's share of the total absolute attribution is summed by temporal distance from the output
frame and aggregated (mean, standard deviation over windows) per network and region kind, with the
diffusion index. Writes ``results.json``, ``share_by_distance.png`` and one ``<model>_<kind>_lam_frames.png``
example per network and region kind into ``--out``.

    python experiments/temporal_attribution/measure.py --compact A.ckpt --edvr B.ckpt --basicvsr C.ckpt \\
        --out experiments/temporal_attribution --clips 3 --fold 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from vsrlab.analysis.inputs import network_view
from vsrlab.analysis.lam import diffusion_index, local_attribution_map, share_by_distance
from vsrlab.analysis.lam_figures import lam_pictures
from vsrlab.archs.contract import is_recurrent
from vsrlab.data import SyntheticVideoDataset
from vsrlab.engine import load_model
from vsrlab.utils.checkpoint import read_checkpoint
from vsrlab.utils.images import save_rgb, to_uint8_hwc

# a static camera (no translation, acceleration, rotation or zoom) and an object at 2-4 LR px/frame
MOTION = {
    "camera_speed": 0.0,
    "camera_acceleration": 0.0,
    "camera_rotation": 0.0,
    "camera_zoom": 0.0,
    "object_speed_range": [2.0, 4.0],
}
STATIC_MAX = 0.1  # LR px: static footprint, every frame of the clip
MOVING_MIN = 1.5  # LR px: moving footprint, both neighbours of the centre frame
MARGIN = 16  # HR px kept free at the frame's borders
STRIDE = 8  # HR px between candidate windows
KINDS = ("static", "moving")


def load_net(path: str) -> nn.Module:
    """The network of a vsrlab checkpoint (the weights its test stage evaluates), frozen, in eval mode."""
    hparams = read_checkpoint(Path(path))["hyper_parameters"]
    cfg = OmegaConf.create(
        {
            "ckpt_path": str(path),
            "model": {"protocol": hparams["protocol"], "evaluation": hparams["evaluation"], "ema": None},
        }
    )
    net = load_model(cfg).evaluation_net("test").eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def region_masks(sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """LR masks ``(h, w)`` of static and moving pixels from the true flow to the centre frame."""
    magnitude = sample["flow"].norm(dim=1).numpy()  # (T, h, w)
    valid = sample["flow_valid"][:, 0].numpy() > 0.5
    c = magnitude.shape[0] // 2
    static = (magnitude < STATIC_MAX).all(0) & valid.all(0)
    near = [c - 1, c + 1]
    moving = (magnitude[near] >= MOVING_MIN).all(0) & valid[max(0, c - 2) : c + 3].all(0)
    return static, moving


def footprint(row: int, col: int, window: int, scale: int, size: tuple[int, int]) -> tuple[slice, slice]:
    """LR pixels under an HR window, one pixel of margin (the detector's differences, the upsampler)."""
    r0, c0 = max(0, row // scale - 1), max(0, col // scale - 1)
    r1 = min(size[0], -(-(row + window) // scale) + 1)
    c1 = min(size[1], -(-(col + window) // scale) + 1)
    return slice(r0, r1), slice(c0, c1)


def select_windows(
    sample: dict[str, Any], window: int, scale: int, count: int, rng: np.random.Generator
) -> dict[str, list[tuple[int, int]]]:
    """Up to ``count`` non-overlapping windows of each kind, drawn from the more textured half of the
    candidates (flat windows carry little attribution and noisy shares)."""
    static, moving = region_masks(sample)
    lq = sample["lq"]
    c = lq.shape[0] // 2
    grey = lq[c].mean(0).numpy()
    texture = np.zeros_like(grey)
    texture[:, 1:] += np.abs(np.diff(grey, axis=1))
    texture[1:, :] += np.abs(np.diff(grey, axis=0))
    h, w = grey.shape
    big_h, big_w = h * scale, w * scale
    candidates: dict[str, list[tuple[float, int, int]]] = {k: [] for k in KINDS}
    for row in range(MARGIN, big_h - 1 - window - MARGIN + 1, STRIDE):
        for col in range(MARGIN, big_w - 1 - window - MARGIN + 1, STRIDE):
            rows, cols = footprint(row, col, window, scale, (h, w))
            for kind, mask in (("static", static), ("moving", moving)):
                if mask[rows, cols].all():
                    candidates[kind].append((float(texture[rows, cols].mean()), row, col))
    chosen: dict[str, list[tuple[int, int]]] = {}
    for kind in KINDS:
        found = candidates[kind]
        if found:
            median = float(np.median([t for t, _, _ in found]))
            found = [f for f in found if f[0] >= median]
        order = rng.permutation(len(found))
        picks: list[tuple[int, int]] = []
        for i in order:
            _, row, col = found[i]
            if all(abs(row - r) >= window or abs(col - q) >= window for r, q in picks):
                picks.append((row, col))
            if len(picks) == count:
                break
        chosen[kind] = picks
    return chosen


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation, min and max of the share at each distance, the diffusion index and the
    attribution-weighted mean temporal distance, over the windows in ``rows``."""
    if not rows:
        return {"windows": 0}
    distances = sorted({int(d) for r in rows for d in r["share_by_distance"]})
    table = np.array([[r["share_by_distance"].get(str(d), 0.0) for d in distances] for r in rows])
    di = np.array([r["diffusion_index"] for r in rows])
    di_frame = np.array([r["diffusion_index_output_frame"] for r in rows])
    reach = np.array([r["mean_distance"] for r in rows])
    return {
        "windows": len(rows),
        "share_by_distance": {
            str(d): {
                "mean": float(table[:, i].mean()),
                "std": float(table[:, i].std()),
                "min": float(table[:, i].min()),
                "max": float(table[:, i].max()),
            }
            for i, d in enumerate(distances)
        },
        "diffusion_index": {"mean": float(di.mean()), "std": float(di.std())},
        "diffusion_index_output_frame": {"mean": float(di_frame.mean()), "std": float(di_frame.std())},
        "mean_distance": {"mean": float(reach.mean()), "std": float(reach.std())},
    }


def save_example(result: Any, view: torch.Tensor, path: Path, max_width: int = 1400) -> Path:
    """The per-frame LAM panels (joint colour scale, share on each) with the analysed window outlined in
    green on every panel, shrunk to ``max_width``."""
    picture = np.ascontiguousarray(lam_pictures(result, to_uint8_hwc(view[0]))["frames"])
    panel = result.output.shape[-1]  # panels are HR-sized, 4 px apart (side_by_side)
    size = result.window_size
    for t in range(view.shape[1]):
        left = t * (panel + 4) + result.col
        cv2.rectangle(picture, (left, result.row), (left + size, result.row + size), (0, 200, 0), 1)
    if picture.shape[1] > max_width:
        factor = max_width / picture.shape[1]
        size = (max_width, round(picture.shape[0] * factor))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    return save_rgb(path, picture)


def plot(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    colours = {"static": "tab:blue", "moving": "tab:orange"}
    for ax, name in zip(axes[0], models, strict=True):
        for j, kind in enumerate(KINDS):
            summary = results[name]["summary"][kind]
            if not summary.get("windows"):
                continue
            stats = summary["share_by_distance"]
            d = np.array([int(k) for k in stats])
            mean = np.array([stats[k]["mean"] for k in stats])
            std = np.array([stats[k]["std"] for k in stats])
            ax.bar(d + (j - 0.5) * 0.38, mean, 0.38, yerr=std, capsize=2, color=colours[kind],
                   label=f"{kind} ({summary['windows']} windows)")  # fmt: skip
        ax.set_title(f"{name} ({results[name]['input_frames']} input frames)")
        ax.set_xlabel("temporal distance from the output frame")
        ax.set_ylabel("share of |attribution|")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(0, results[name]["input_frames"] // 2 + 1))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compact", help="checkpoint of the compact default network")
    parser.add_argument("--edvr", help="checkpoint of the EDVR run")
    parser.add_argument("--basicvsr", help="checkpoint of the BasicVSR run")
    parser.add_argument("--out", required=True, help="directory for results.json and the figures")
    parser.add_argument("--clips", type=int, default=3, help="static-camera clips")
    parser.add_argument("--windows", type=int, default=2, help="windows per region kind and clip")
    parser.add_argument("--fold", type=int, default=20, help="LAM path steps")
    parser.add_argument("--frames", type=int, default=11, help="frames per clip (a recurrent net sees all)")
    parser.add_argument("--lq-size", type=int, default=64, help="LR side of the clips")
    parser.add_argument("--window-size", type=int, default=16, help="LAM window, HR px")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--merge", action="store_true", help="keep other models of --out/results.json (same settings)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {k: getattr(args, k) for k in ("compact", "edvr", "basicvsr") if getattr(args, k)}
    if not models:
        parser.error("give at least one of --compact, --edvr, --basicvsr")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    scale = 4
    dataset = SyntheticVideoDataset(
        split="test", num_clips=args.clips, num_frames=args.frames, lq_size=(args.lq_size, args.lq_size),
        scale=scale, seed=args.seed, motion=MOTION, flow_pairs=False,
    )  # fmt: skip
    rng = np.random.default_rng(args.seed)
    clips = []
    for i in range(args.clips):
        sample = dataset[i]
        windows = select_windows(sample, args.window_size, scale, args.windows, rng)
        near = sample["flow"].norm(dim=1)[[args.frames // 2 - 1, args.frames // 2 + 1]].mean().item()
        print(f"clip {sample['key']}: static windows {windows['static']}, moving windows {windows['moving']}"
              f" (mean |flow| to the neighbours {near:.2f} LR px)", flush=True)  # fmt: skip
        clips.append((sample, windows))

    settings = {
        "clips": args.clips,
        "frames_per_clip": args.frames,
        "lq_size": [args.lq_size, args.lq_size],
        "scale": scale,
        "seed": args.seed,
        "motion": MOTION,
        "static_max_flow": STATIC_MAX,
        "moving_min_flow": MOVING_MIN,
        "windows_per_kind_and_clip": args.windows,
        "window_size": args.window_size,
        "lam": {"fold": args.fold, "sigma": 1.2, "kernel_size": 9, "detector": "gradient"},
        "output_frame": "the clip's centre frame",
    }
    results: dict[str, Any] = {}
    if args.merge and (out / "results.json").is_file():
        previous = json.loads((out / "results.json").read_text())
        own = ("windows_per_kind_and_clip", "lam")  # may differ per model (each records its own)
        if {k: v for k, v in previous["settings"].items() if k not in own} != {
            k: v for k, v in settings.items() if k not in own
        }:
            raise SystemExit(f"--merge: {out / 'results.json'} was measured with other settings")
        results = {k: v for k, v in previous["models"].items() if k not in models}
        for kept in results.values():
            kept.setdefault("windows_per_kind_and_clip", previous["settings"]["windows_per_kind_and_clip"])
            kept.setdefault("lam", previous["settings"]["lam"])
        print(f"kept from {out / 'results.json'}: {list(results)}", flush=True)
    started = time.perf_counter()
    for name, ckpt in models.items():
        net = load_net(ckpt)
        recurrent = is_recurrent(net)
        rows: list[dict[str, Any]] = []
        examples: dict[str, Path] = {}
        model_start = time.perf_counter()
        total = sum(len(w[k]) for _, w in clips for k in KINDS)
        done = 0
        input_frames = 0
        for sample, windows in clips:
            c = sample["lq"].shape[0] // 2
            view, index = network_view(net, sample["lq"], c)
            input_frames = view.shape[1]
            flow = sample["flow"].norm(dim=1)
            for kind in KINDS:
                for row, col in windows[kind]:
                    t0 = time.perf_counter()
                    result = local_attribution_map(
                        net, view, row, col, window_size=args.window_size, sigma=1.2, fold=args.fold,
                        kernel_size=9, frame=index if recurrent else None,
                    )  # fmt: skip
                    shares = result.frame_shares.numpy()
                    by_distance = share_by_distance(shares, index)
                    rows_lr, cols_lr = footprint(row, col, args.window_size, scale, flow.shape[-2:])
                    rows.append(
                        {
                            "clip": sample["key"],
                            "kind": kind,
                            "row": row,
                            "col": col,
                            "flow_to_neighbours": float(flow[[c - 1, c + 1], rows_lr, cols_lr].mean()),
                            "frame_shares": shares.tolist(),
                            "share_by_distance": {str(d): s for d, s in by_distance.items()},
                            "mean_distance": float(sum(d * s for d, s in by_distance.items())),
                            "diffusion_index": result.diffusion_index,
                            "diffusion_index_output_frame": diffusion_index(result.attribution_map[index]),
                            "seconds": time.perf_counter() - t0,
                        }
                    )
                    if kind not in examples:
                        examples[kind] = save_example(result, view, out / f"{name}_{kind}_lam_frames.png")
                    done += 1
                    elapsed = time.perf_counter() - model_start
                    print(f"[{name} {done}/{total}] {sample['key']} {kind} ({row},{col}): share by distance "
                          f"{[round(s, 3) for s in by_distance.values()]}, DI {result.diffusion_index:.1f}, "
                          f"{rows[-1]['seconds']:.0f} s (model {elapsed / 60:.1f} min, "
                          f"all {(time.perf_counter() - started) / 60:.1f} min)", flush=True)  # fmt: skip
        results[name] = {
            "checkpoint": str(ckpt),
            "network": type(net).__name__,
            "recurrent": recurrent,
            "input_frames": input_frames,
            "windows_per_kind_and_clip": args.windows,
            "lam": settings["lam"],
            "parameters": sum(p.numel() for p in net.parameters()),
            "summary": {kind: summarise([r for r in rows if r["kind"] == kind]) for kind in KINDS},
            "windows": rows,
            "examples": {k: p.name for k, p in examples.items()},
            "seconds": time.perf_counter() - model_start,
        }
        del net

    order = [k for k in ("compact", "edvr", "basicvsr") if k in results]
    results = {k: results[k] for k in order}
    figure = plot(results, out / "share_by_distance.png")
    settings["windows_per_kind_and_clip"] = {k: r["windows_per_kind_and_clip"] for k, r in results.items()}
    settings["lam"] = {k: r["lam"] for k, r in results.items()}
    document = {
        "settings": settings,
        "models": results,
        "figures": [figure.name] + [p for r in results.values() for p in r["examples"].values()],
        "seconds": sum(r["seconds"] for r in results.values()),
    }
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"results in {out / 'results.json'}", flush=True)
    for name, r in results.items():
        for kind in KINDS:
            s = r["summary"][kind]
            if s.get("windows"):
                shares = {d: round(v["mean"], 3) for d, v in s["share_by_distance"].items()}
                di, di_frame = s["diffusion_index"]["mean"], s["diffusion_index_output_frame"]["mean"]
                reach = s["mean_distance"]["mean"]
                print(f"{name:9s} {kind:7s} n={s['windows']:2d} shares {shares} DI {di:.1f} "
                      f"(output frame {di_frame:.1f}) mean distance {reach:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
