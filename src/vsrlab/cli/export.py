"""``vsrlab-export``: a trained network for release, as BasicSR-layout weights or as ONNX.

    vsrlab-export source=logs/train/runs/my_run                   # the run's best checkpoint (else last.ckpt)
    vsrlab-export source=logs/train/runs/my_run/checkpoints/last.ckpt output=edvr_m.pth
    vsrlab-export source=logs/train/runs/my_run format=onnx onnx.height=180 onnx.width=320

``format=pth`` writes ``{'params': trained weights, 'params_ema': moving average}`` (``params_ema``
only for runs with ``model.ema``); BasicSR, MMagic's BasicSR loaders and ``vsrlab`` (``arch.pretrained=...``,
which prefers ``params_ema``) read it. ``format=onnx``: :mod:`vsrlab.inference.onnx_export`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vsrlab.cli import command_line, run_app, start
from vsrlab.engine.paths import CONFIG_DIR

FORMATS = ("pth", "onnx")


def run(cfg: DictConfig) -> None:
    """Export as ``cfg.format`` says and print what was written."""
    import torch

    from vsrlab.apps.export import export, export_onnx_model

    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format}: one of {', '.join(FORMATS)}")
    if cfg.format == "pth":
        path = export(cfg.source, cfg.output)
        weights = torch.load(path, map_location="cpu", weights_only=True)
        print(f"wrote {path}: " + ", ".join(f"{k} ({len(v)} tensors)" for k, v in weights.items()))
        return
    o = cfg.onnx
    done = export_onnx_model(cfg.source, cfg.output, cfg.arch, o.frames, o.height, o.width, o.opset, o.atol)
    shape = " x ".join(map(str, done.input_shape))
    check = (
        ""
        if done.max_diff is None
        else f"; ONNX Runtime - PyTorch on a synthetic clip: max |diff| {done.max_diff:.2g}"
    )
    print(f"wrote {done.path} (input lq: {shape}){check}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def hydra_main(cfg: DictConfig) -> None:
    """The Hydra app."""
    from vsrlab.apps.export import ExportCheckError

    run_app("export", run, cfg, user_errors=(ValueError, ExportCheckError))


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``vsrlab-export``; ``argv``: its arguments when called from Python (default:
    the command line's). Returns 0; errors exit through ``SystemExit``."""
    with command_line("vsrlab-export", argv):
        start("export")
        hydra_main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
