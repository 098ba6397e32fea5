"""``vsrlab-export``: the weights of a vsrlab run in BasicSR's layout, for release or for BasicSR.

    vsrlab-export logs/train/runs/my_run                      # the run's best checkpoint (else last.ckpt)
    vsrlab-export logs/train/runs/my_run/checkpoints/last.ckpt -o edvr_m.pth

Writes ``{'params': trained weights, 'params_ema': moving average}`` (``params_ema`` only for runs
with ``model.ema``); BasicSR, MMagic's BasicSR loaders and ``vsrlab`` (``arch.pretrained=...``, which
prefers ``params_ema``) read it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vsrlab.archs.pretrained import basicsr_weights, is_vsrlab_checkpoint
from vsrlab.sweep import METRICS_FILE
from vsrlab.utils.checkpoint import CHECKPOINT_DIR, LAST_CHECKPOINT, CheckpointError, read_checkpoint
from vsrlab.utils.io import atomic_write


def run_checkpoint(run_dir: Path) -> Path:
    """The checkpoint of a run directory: the best one of its ``metrics.json``, else ``last.ckpt``."""
    metrics = run_dir / METRICS_FILE
    best = json.loads(metrics.read_text()).get("best", {}).get("ckpt_path") if metrics.is_file() else None
    if best and Path(best).is_file():
        return Path(best)
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not last.is_file():
        raise FileNotFoundError(f"{run_dir} has no best checkpoint in {METRICS_FILE} and no {last}")
    return last


def export_weights(source: str | Path, output: str | Path | None = None) -> Path:
    """Write the BasicSR-layout weights of ``source`` (a checkpoint or a run directory) to
    ``output`` (default: ``<checkpoint stem>.pth`` beside it); returns the path written."""
    source = Path(source)
    ckpt_path = run_checkpoint(source) if source.is_dir() else source
    ckpt = read_checkpoint(ckpt_path)
    if not is_vsrlab_checkpoint(ckpt):
        raise CheckpointError(f"{ckpt_path} is not a vsrlab training checkpoint (no net.* weights)")
    output = Path(output) if output else ckpt_path.with_suffix(".pth")
    with atomic_write(output, "wb") as f:
        torch.save(basicsr_weights(ckpt), f)
    return output


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="vsrlab-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a vsrlab checkpoint (.ckpt) or a run directory")
    parser.add_argument("-o", "--output", help="file to write (default: the checkpoint's path with .pth)")
    args = parser.parse_args(argv)
    path = export_weights(args.source, args.output)
    weights = torch.load(path, map_location="cpu", weights_only=True)
    print(f"wrote {path}: " + ", ".join(f"{k} ({len(v)} tensors)" for k, v in weights.items()))


if __name__ == "__main__":
    main()
