"""``vsrlab-export``: the weights of a vsrlab run in BasicSR's layout, for release or for BasicSR.

    vsrlab-export logs/train/runs/my_run                      # the run's best checkpoint (else last.ckpt)
    vsrlab-export logs/train/runs/my_run/checkpoints/last.ckpt -o edvr_m.pth

Writes ``{'params': trained weights, 'params_ema': moving average}`` (``params_ema`` only for runs
with ``model.ema``); BasicSR, MMagic's BasicSR loaders and ``vsrlab`` (``arch.pretrained=...``, which
prefers ``params_ema``) read it.
"""

from __future__ import annotations

import argparse

import torch

from vsrlab.apps.export import export


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="vsrlab-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a vsrlab checkpoint (.ckpt) or a run directory")
    parser.add_argument("-o", "--output", help="file to write (default: the checkpoint's path with .pth)")
    args = parser.parse_args(argv)
    path = export(args.source, args.output)
    weights = torch.load(path, map_location="cpu", weights_only=True)
    print(f"wrote {path}: " + ", ".join(f"{k} ({len(v)} tensors)" for k, v in weights.items()))


if __name__ == "__main__":
    main()
