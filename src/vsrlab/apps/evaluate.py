"""``vsrlab-eval``'s app: a checkpoint, official weights or a baseline arch scored on a dataset's
protocol: per-clip and mean PSNR / SSIM, the data fingerprint, ``metrics.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import rich
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from vsrlab.callbacks import EvaluationImages
from vsrlab.engine import build_trainer, finish_wandb, instantiate_loggers, load_model
from vsrlab.run import METRICS_FILE, RESOLVED_CONFIG, write_json
from vsrlab.utils.console import results_table

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the test loop of ``cfg.data`` and return (and write) per-clip and mean scores."""
    try:
        return _evaluate(cfg)
    finally:
        finish_wandb()


def run_data(cfg: DictConfig) -> str:
    """Point ``cfg.data`` (and the protocol it implies) at the data of the checkpoint's own run when the
    command line chose no data (no ``data=`` or ``data.*`` override): a checkpoint is scored on the
    clips its run was tested on, not on ``eval.yaml``'s default. Returns where the data came from."""
    ckpt = cfg.get("ckpt_path")
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    if not ckpt:
        return "data of this config"
    if any(o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] == "data" for o in overrides):
        return "data given on the command line"
    resolved = Path(ckpt).resolve().parent.parent / RESOLVED_CONFIG
    if not resolved.is_file():
        return f"data of this config ({resolved.name} not found beside the checkpoint's run)"
    run = OmegaConf.load(resolved)
    if "data" not in run:
        return f"data of this config ({resolved} has no data)"
    with open_dict(cfg):
        cfg.data = run.data
        if "protocol" in run.data:
            cfg.model.protocol = run.data.protocol
    return f"the data its run was tested on ({resolved}; data=... chooses other data)"


def _evaluate(cfg: DictConfig) -> dict[str, Any]:
    log.info("evaluating on %s", run_data(cfg))
    datamodule = instantiate(cfg.data)
    model = load_model(cfg)
    loggers = instantiate_loggers(cfg)
    evaluation = model.eval_cfg
    images = EvaluationImages(evaluation["log_images"], evaluation["log_offsets"], bool(cfg.eval.save_images))
    trainer = build_trainer(cfg, logger=loggers or False, callbacks=[images])
    trainer.test(model, datamodule=datamodule, verbose=False)
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
