"""``vsrlab-eval``: score a checkpoint, or a baseline arch, on a dataset's evaluation protocol.

    vsrlab-eval ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    vsrlab-eval arch=bicubic data=synthetic
    vsrlab-eval arch=bicubic data=vid4 data.root=/data/Vid4          # the published bicubic baseline
    vsrlab-eval ckpt_path=... data=vid4 eval.save_images=true       # also writes the output frames

Prints a per-clip table and writes ``metrics.json`` (per clip and mean PSNR / SSIM, the protocol, the
data fingerprint and any problem found in the data, the number of clips skipped as bad) to the run
dir; ``eval.save_images=true`` writes every scored output frame as PNG under ``images/test/<clip>/``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vsrlab.cli import run_app, start
from vsrlab.engine.paths import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    """The Hydra app."""
    from vsrlab.apps.evaluate import evaluate
    from vsrlab.engine import setup_run

    setup_run(cfg, "eval")
    run_app("eval", evaluate, cfg)


def main() -> None:
    """Console entry point ``vsrlab-eval``."""
    start("eval")
    hydra_main()


if __name__ == "__main__":
    main()
