"""``vsrlab-analyze``: look inside a network (LAM, offsets versus flow, degradation semantics).

    vsrlab-analyze tool=lam ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt tool.row=100 tool.col=120
    vsrlab-analyze tool=offsets ckpt_path=...                       # the synthetic clip's true flow
    vsrlab-analyze tool=semantics ckpt_path=... tool.layer=reconstruction.3
    vsrlab-analyze tool=lam arch=edvr arch.pretrained=<official .pth> input=<LR frame folder>

Pictures, ``<tool>.json`` and the raw numbers go to the run directory and to W&B (offline by default).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vsrlab.cli import run_app, start
from vsrlab.engine.paths import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="analyze")
def hydra_main(cfg: DictConfig) -> None:
    """The Hydra app."""
    from vsrlab.apps.analyze import analyze
    from vsrlab.engine import setup_run

    setup_run(cfg, "analyze")
    run_app("analyze", analyze, cfg)


def main() -> None:
    """Console entry point ``vsrlab-analyze``."""
    start("analyze")
    hydra_main()


if __name__ == "__main__":
    main()
