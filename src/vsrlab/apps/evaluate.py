"""``vsrlab-eval``'s app: a checkpoint, official weights or a baseline arch scored on a dataset's
protocol: per-clip and mean PSNR / SSIM, the data fingerprint, ``metrics.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import rich
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vsrlab.callbacks import EvaluationImages
from vsrlab.engine import build_trainer, finish_wandb, instantiate_loggers, load_model
from vsrlab.run import METRICS_FILE, write_json
from vsrlab.utils.console import results_table

log = logging.getLogger(__name__)


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
