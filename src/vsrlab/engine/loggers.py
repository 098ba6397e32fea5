"""Loggers of a run: W&B, CSV (and whatever ``cfg.logger`` holds), named after the sweep job they log,
given the config, swept values, git state and package versions; and the W&B run closed after each run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from vsrlab.run import job_swept_values, run_id, short_keys
from vsrlab.utils.instantiate import instantiate_group

log = logging.getLogger(__name__)


def sweep_context() -> dict[str, Any]:
    """``{'sweep', 'job', 'swept'}`` of the current Hydra multirun job (sweep name, job subdirectory,
    swept values from the sweep's manifest); empty outside a multirun."""
    if not HydraConfig.initialized():
        return {}
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    sweep_dir, subdir = Path(hydra_cfg.sweep.dir), str(hydra_cfg.sweep.subdir)
    return {"sweep": sweep_dir.name, "job": subdir, "swept": job_swept_values(sweep_dir, subdir)}


def instantiate_loggers(
    cfg: DictConfig,
    context: dict[str, Any] | None = None,
    git: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
) -> list[Any]:
    """The loggers of ``cfg.logger``. Unset W&B fields are derived: ``id`` from the run directory (a
    resumed run or requeued sweep job continues its W&B run), ``name`` = ``<sweep>/<job>`` or the run
    name, ``group`` = the sweep name (else the task name); swept values are added to ``tags``.
    Every logger receives the resolved config, the swept values, the git state and the package
    versions."""
    context = context or {}
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is not None:
        with open_dict(cfg):
            if wandb_cfg.get("id") is None:
                wandb_cfg.id = run_id(cfg.paths.output_dir, cfg.paths.log_dir)
            if wandb_cfg.get("name") is None:
                wandb_cfg.name = f"{context['sweep']}/{context['job']}" if context else cfg.get("run_name")
            if wandb_cfg.get("group") is None:
                wandb_cfg.group = context.get("sweep") or cfg.get("task_name")
            names = short_keys(list(context.get("swept", {})))
            swept_tags = [f"{names[k]}={v}"[:64] for k, v in context.get("swept", {}).items()]
            wandb_cfg.tags = [*(wandb_cfg.get("tags") or []), *swept_tags]
    loggers = instantiate_group(cfg.get("logger"), "logger")
    for logger in loggers:
        # Lightning passes anonymous=None to wandb.init, which warns that the setting has no effect
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            init.pop("anonymous", None)
    params = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "swept": context.get("swept", {}),
        "git": git or {},
        "environment": environment or {},
    }
    for logger in loggers:
        logger.log_hyperparams(params)
    return loggers


def finish_wandb(exit_code: int = 0, preempted: bool = False) -> None:
    """Close the current W&B run, so that the next run in this process (multirun) starts its own.

    A pre-empted run is marked as such (``mark_preempting``) and finished with its exit code;
    a W&B service that is already gone (a cluster stops every process of a job) is reported as a
    warning, never as the job's error.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    run = wandb.run
    try:
        if preempted:
            run.mark_preempting()
        wandb.finish(exit_code=exit_code)
    except Exception as err:  # e.g. wandb's MailboxClosedError when its service was killed
        log.warning(
            "the W&B run %s could not be finished cleanly (%s: %s); `wandb sync` its offline directory",
            run.id,
            type(err).__name__,
            err,
        )
