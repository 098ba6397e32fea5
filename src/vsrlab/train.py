"""``vsrlab-train``: train a VSR model from the Hydra config in ``conf/train.yaml``.

    vsrlab-train                                  # default experiment on the synthetic data
    vsrlab-train debug=fdr                        # one train and one val batch
    vsrlab-train experiment=align_flow            # an experiment file from conf/experiment/
    vsrlab-train run_name=my_run ckpt_path=last   # resume logs/train/runs/my_run
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
import rich
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from vsrlab.utils.checkpoint import AtomicCheckpointIO, resolve_ckpt_path
from vsrlab.utils.instantiate import instantiate_group
from vsrlab.utils.resolvers import register_resolvers
from vsrlab.utils.run import print_config_tree, results_table, run_id, write_json
from vsrlab.utils.system import keep_freed_memory

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
register_resolvers()
log = logging.getLogger(__name__)


def setup_run(cfg: DictConfig) -> None:
    """Process-wide settings from ``cfg.extras``."""
    extras = cfg.get("extras") or {}
    if extras.get("cpu_malloc_cache"):
        keep_freed_memory()
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config"):
        print_config_tree(cfg)


def instantiate_loggers(cfg: DictConfig) -> list[Any]:
    """The loggers of ``cfg.logger``; a W&B logger without an ``id`` gets one derived from the run
    directory, so that resuming the run continues the same W&B run."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is not None and wandb_cfg.get("id") is None:
        with open_dict(cfg):
            wandb_cfg.id = run_id(cfg.paths.output_dir, cfg.paths.log_dir)
    return instantiate_group(cfg.get("logger"), "logger")


def build_trainer(cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with atomic checkpoint writes."""
    return instantiate(cfg.trainer, plugins=[AtomicCheckpointIO()], **kwargs)


def finish_wandb() -> None:
    """Close the current W&B run, so that the next run in this process (multirun) starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the model of ``cfg``; returns the final metrics.

    Also writes them to ``<output_dir>/metrics.json``.
    """
    try:
        return _train(cfg)
    finally:
        finish_wandb()


def _train(cfg: DictConfig) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir) if cfg.get("train", True) else None
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_loggers(cfg)
    trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers or False)
    for logger in trainer.loggers:
        logger.log_hyperparams({"config": OmegaConf.to_container(cfg, resolve=True)})

    results: dict[str, Any] = {"run_dir": str(output_dir)}
    if cfg.get("train", True):
        log.info("training%s", f" from {ckpt_path}" if ckpt_path else "")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
        results["val"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        results["global_step"] = trainer.global_step
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            results["best"] = {"ckpt_path": checkpoint.best_model_path,
                               "score": float(checkpoint.best_model_score), "monitor": checkpoint.monitor}
    if cfg.get("test", False):
        best = results.get("best", {}).get("ckpt_path")
        trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=False)
        results["test"] = model.test_results
        if trainer.is_global_zero:
            rich.print(results_table(results["test"], f"test of {Path(best).name if best else 'the final weights'}"))
    if trainer.is_global_zero and not trainer.fast_dev_run:
        write_json(output_dir / "metrics.json", results)
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point (Hydra app)."""
    setup_run(cfg)
    results = train(cfg)
    metric = cfg.get("optimized_metric")
    return results.get("val", {}).get(metric) if metric else None


if __name__ == "__main__":
    main()
