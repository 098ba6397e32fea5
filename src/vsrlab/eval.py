"""``vsrlab-eval``: score a checkpoint, or a baseline arch, on a dataset's evaluation protocol.

    vsrlab-eval ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    vsrlab-eval arch=bicubic data=synthetic
    vsrlab-eval arch=bicubic data=vid4 data.root=/data/Vid4          # the published bicubic baseline
    vsrlab-eval ckpt_path=... data=vid4 eval.save_images=true       # also writes the output frames

Prints a per-clip table and writes ``metrics.json`` (per clip and mean PSNR / SSIM, the protocol, the
number of clips skipped as bad) to the run dir; ``eval.save_images=true`` writes every scored output
frame as PNG under ``images/test/<clip>/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import rich
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vsrlab.models import VSRModule
from vsrlab.train import CONFIG_DIR, build_trainer, finish_wandb, instantiate_loggers, setup_run
from vsrlab.utils.checkpoint import CheckpointError, read_checkpoint
from vsrlab.utils.run import results_table, write_json

log = logging.getLogger(__name__)


def load_model(cfg: DictConfig) -> VSRModule:
    """The model of ``cfg.ckpt_path`` (architecture from the checkpoint) or of ``cfg.model``.

    The evaluation protocol (metrics) and evaluation options always come from ``cfg``.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint is missing, unreadable or not a vsrlab
            Lightning checkpoint; the message names the file.
    """
    overrides = OmegaConf.to_container(cfg.model, resolve=True)
    if not cfg.get("ckpt_path"):
        return instantiate(cfg.model)
    path = Path(cfg.ckpt_path)
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "arch" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path} is not a vsrlab training checkpoint (no hyper_parameters.arch); official "
            f"weights load with arch=<name> arch.pretrained={path}"
        )
    log.info("loading %s (its architecture config overrides arch=...)", path)
    ema = hparams.get("ema")
    if ema and overrides.get("ema"):  # e.g. model.ema.test=false: score the trained weights
        ema = {**ema, **overrides["ema"]}
    model = VSRModule(
        **{**hparams, "metrics": overrides["metrics"], "evaluation": overrides["evaluation"], "ema": ema}
    )
    model.on_load_checkpoint(ckpt)
    model.load_state_dict(ckpt["state_dict"])
    return model


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the test loop of ``cfg.data`` and return (and write) per-clip and mean scores."""
    try:
        return _evaluate(cfg)
    finally:
        finish_wandb()


def _evaluate(cfg: DictConfig) -> dict[str, Any]:
    datamodule = instantiate(cfg.data)
    model = load_model(cfg)
    model.eval_cfg["save_images"] = bool(cfg.eval.save_images)
    loggers = instantiate_loggers(cfg)
    trainer = build_trainer(cfg, logger=loggers or False, callbacks=[])
    trainer.test(model, datamodule=datamodule)
    results = {
        **model.test_results,
        "protocol": OmegaConf.to_container(cfg.model.metrics, resolve=True),
        "ckpt_path": cfg.get("ckpt_path"),
        "arch": model.hparams.arch.get("_target_"),
    }
    rich.print(results_table(results, f"{results['arch']} ({cfg.get('ckpt_path') or 'no checkpoint'})"))
    if trainer.is_global_zero:
        path = write_json(Path(cfg.paths.output_dir) / "metrics.json", results)
        log.info("wrote %s", path)
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    """Console entry point (Hydra app)."""
    setup_run(cfg)
    evaluate(cfg)


if __name__ == "__main__":
    main()
