"""Evaluating a checkpoint, official weights or a baseline arch on a dataset's protocol (the library
behind ``vsrlab-eval``): per-clip and mean PSNR / SSIM, the data fingerprint, ``metrics.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import rich
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vsrlab.callbacks import EvaluationImages
from vsrlab.models import VSRModule
from vsrlab.models.vsr_module import SPEED_OPTIONS
from vsrlab.run import METRICS_FILE, write_json
from vsrlab.training import build_trainer, finish_wandb, instantiate_loggers
from vsrlab.utils.checkpoint import CheckpointError, read_checkpoint
from vsrlab.utils.console import results_table

log = logging.getLogger(__name__)


def load_model(cfg: DictConfig) -> VSRModule:
    """The model of ``cfg.ckpt_path`` (architecture from the checkpoint) or of ``cfg.model``.

    The evaluation protocol and evaluation options always come from ``cfg``; ``arch.pretrained`` is
    loaded into a network built from ``cfg``.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint is missing, unreadable or not a vsrlab
            Lightning checkpoint; the message names the file.
    """
    overrides = OmegaConf.to_container(cfg.model, resolve=True)
    if not cfg.get("ckpt_path"):
        model = instantiate(cfg.model)
        model.load_pretrained()
        return model
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
    hparams = {k: v for k, v in hparams.items() if k != "metrics"}  # checkpoints of earlier versions
    # the evaluation's own protocol, pictures and speed options (compile, channels_last, ...)
    current = {k: overrides[k] for k in ("protocol", "evaluation")}
    current.update({k: overrides[k] for k in SPEED_OPTIONS if k in overrides})
    model = VSRModule(**{**hparams, **current, "ema": ema})
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
    loggers = instantiate_loggers(cfg)
    evaluation = model.eval_cfg
    images = EvaluationImages(evaluation["log_images"], evaluation["log_offsets"], bool(cfg.eval.save_images))
    trainer = build_trainer(cfg, logger=loggers or False, callbacks=[images])
    trainer.test(model, datamodule=datamodule)
    results = {
        **model.test_results,
        "protocol": OmegaConf.to_container(cfg.model.protocol, resolve=True),
        "ckpt_path": cfg.get("ckpt_path"),
        "arch": model.hparams.arch.get("_target_"),
    }
    rich.print(results_table(results, f"{results['arch']} ({cfg.get('ckpt_path') or 'no checkpoint'})"))
    if trainer.is_global_zero:
        path = write_json(Path(cfg.paths.output_dir) / METRICS_FILE, results)
        log.info("wrote %s", path)
    return results
