"""``vsrlab-infer``: super-resolve a real video (a video file or a folder of frames).

    vsrlab-infer ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt input=clip.mp4 output=out/
    vsrlab-infer arch=edvr arch.pretrained=EDVR_M.pth input=frames/ output=sr.mkv
    vsrlab-infer arch=bicubic input=clip.mp4 output=sr.mkv frames_per_chunk=60 device=cuda

See :mod:`vsrlab.inference` for how frames are streamed and what the output equals.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vsrlab.cli import run_app, start
from vsrlab.engine.paths import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def hydra_main(cfg: DictConfig) -> None:
    """The Hydra app."""
    from vsrlab.apps.infer import infer
    from vsrlab.engine import setup_run

    setup_run(cfg, "infer")
    run_app("infer", infer, cfg)


def main() -> None:
    """Console entry point ``vsrlab-infer``."""
    start("infer")
    hydra_main()


if __name__ == "__main__":
    main()
