"""``vsrlab-train``'s app: a model trained from a composed config, with the run directory's files,
automatic resumption and what happens on a pre-emption."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import rich
from hydra.utils import instantiate
from omegaconf import DictConfig

from vsrlab.callbacks.preemption import Preempted
from vsrlab.cluster.signals import STOP, signal_name
from vsrlab.engine import build_trainer, finish_wandb, instantiate_loggers, sweep_context
from vsrlab.inference.clip import measure_offset_diversity
from vsrlab.models.flow_source import batch_flows
from vsrlab.run import (
    CHECKPOINT_DIR,
    DONE_MARKER,
    METRICS_FILE,
    is_done,
    mark_done,
    read_json,
    record_preemption,
    write_json,
    write_status,
)
from vsrlab.run.checkpoints import checkpoint_step, resolve_ckpt_path
from vsrlab.run.resume import check_same_config
from vsrlab.run.snapshot import save_job_files
from vsrlab.utils.console import results_table
from vsrlab.utils.ddp import process_rank
from vsrlab.utils.instantiate import instantiate_group

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the model of ``cfg``; returns the final metrics.

    The run directory keeps the resolved config, git commit and diff, ``status.json``, then
    ``metrics.json`` and last a ``done`` marker. With ``ckpt_path: auto`` (default) a run directory
    with a ``done`` marker is not trained again (its stored metrics are returned) and one with a
    ``last.ckpt`` resumes from it, after checking that its stored config matches (``resume``);
    ``ckpt_path: last`` resumes explicitly, also a finished run (e.g. with more steps).
    """
    output_dir = Path(cfg.paths.output_dir)
    rank_zero = process_rank() == 0
    resume = cfg.get("resume") or {}
    fast_dev_run = bool(cfg.trainer.get("fast_dev_run"))
    automatic = cfg.get("ckpt_path") == "auto"
    check = bool(resume.get("check_config", True)) and rank_zero
    ignore = list(resume.get("ignore", []))
    if automatic and is_done(output_dir) and not fast_dev_run:
        if check:
            check_same_config(cfg, output_dir, ignore)
        log.info("%s finished earlier (its done marker exists): not training it again", output_dir)
        return read_json(output_dir / METRICS_FILE) or {}
    if automatic and check and any((output_dir / CHECKPOINT_DIR).glob("*.ckpt")):
        # automatic resumption must continue the same experiment; checked before the checkpoint is
        # chosen (which may set an unreadable one aside), so that a refused relaunch changes nothing
        check_same_config(cfg, output_dir, ignore)
    ckpt_path = (
        resolve_ckpt_path(cfg.get("ckpt_path"), output_dir, rank_zero) if cfg.get("train", True) else None
    )
    if ckpt_path and check and not automatic and Path(ckpt_path).parent == output_dir / CHECKPOINT_DIR:
        check_same_config(cfg, output_dir, ignore, strict=False)  # ckpt_path=last may change it: logged
    stop_if_signalled(output_dir, ckpt_path)
    snapshot: dict[str, Any] = {}
    if rank_zero:
        (output_dir / DONE_MARKER).unlink(missing_ok=True)  # a run starting over is not finished
        snapshot = save_job_files(cfg, output_dir)
        write_status(output_dir, "running")
    try:
        return _train(cfg, ckpt_path, snapshot)
    finally:
        finish_wandb()


def _train(cfg: DictConfig, ckpt_path: str | None, snapshot: dict[str, Any]) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    context = sweep_context()
    try:
        datamodule = instantiate(cfg.data)
        model = instantiate(cfg.model)
        callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
        loggers = instantiate_loggers(cfg, context, snapshot.get("git"), snapshot.get("environment"))
        trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers or False)
    except Exception as error:  # a run that cannot start is failed, not left "running"
        if process_rank() == 0:
            write_status(output_dir, "failed", step=0, error=f"{type(error).__name__}: {error}")
        raise
    stop_if_signalled(output_dir, ckpt_path)

    results: dict[str, Any] = {"run_dir": str(output_dir), **({"swept": context["swept"]} if context else {})}
    try:
        if cfg.get("train", True):
            log.info("training%s", f" from {ckpt_path}" if ckpt_path else "")
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
            results.update(fit_results(trainer, model, datamodule))
        if cfg.get("test", False):
            best = results.get("best", {}).get("ckpt_path")
            trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=False, verbose=False)
            results["test"] = model.test_results
            if trainer.is_global_zero:
                rich.print(
                    results_table(
                        results["test"], f"test of {Path(best).name if best else 'the final weights'}"
                    )
                )
    except BaseException as error:
        stop = error if isinstance(error, Preempted) else None
        if trainer.is_global_zero and not trainer.fast_dev_run:
            if stop is not None:
                record_preemption(output_dir, results.get("global_step", stop.step), signal_name(stop.signum))
            else:
                write_status(
                    output_dir,
                    "failed",
                    step=int(trainer.global_step),
                    error=f"{type(error).__name__}: {error}",
                )
        finish_wandb(exit_code=stop.code if stop is not None else 1, preempted=stop is not None)
        if stop is not None:
            hand_over(output_dir, stop.signum)
        raise
    if trainer.is_global_zero and not trainer.fast_dev_run:
        write_json(output_dir / METRICS_FILE, results)
        mark_done(output_dir)
        write_status(output_dir, "done", step=int(trainer.global_step))
    return results


def stop_if_signalled(output_dir: Path, ckpt_path: str | None) -> None:
    """Before training starts: if this process received a stop signal (:data:`vsrlab.cluster.signals.STOP`),
    record the run as pre-empted at the step it would resume from and hand over (requeue or exit).
    Only rank 0 acts here (under SLURM its requeue ends every rank); another rank's signal is acted on
    when the ranks first agree, at the start of training."""
    signum = STOP.pending
    if signum is None or process_rank() != 0:
        return
    step = checkpoint_step(ckpt_path) if ckpt_path else 0
    log.warning("%s before training (step %d): stopping; %s", signal_name(signum), step,
                f"the run resumes from {ckpt_path}" if ckpt_path else "the run starts over")  # fmt: skip
    record_preemption(output_dir, step, signal_name(signum))
    finish_wandb(exit_code=128 + signum, preempted=True)
    hand_over(output_dir, signum)


def hand_over(output_dir: Path, signum: int) -> None:
    """:meth:`~vsrlab.cluster.signals.StopSignals.hand_over` (requeue, exit with 128 + signal); a requeue
    that fails (no requeues left: submitit's error) marks the run ``failed`` with it, since nothing
    will resume it."""
    try:
        STOP.hand_over(signum, rank=process_rank())
    except Exception as error:
        if process_rank() == 0:
            write_status(
                output_dir, "failed", error=f"pre-empted and not requeued: {type(error).__name__}: {error}"
            )
        raise


def fit_results(trainer: pl.Trainer, model: Any, datamodule: Any) -> dict[str, Any]:
    """Final and per-validation metrics, best checkpoint, parameter counts and the offset diversity
    (Chan et al. 2021, Fig. 9) of the validated network on the first validation clips."""
    net = model.net
    results: dict[str, Any] = {
        "val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
        "val_history": list(model.val_history),
        "global_step": trainer.global_step,
        "params": {
            "total": sum(p.numel() for p in net.parameters()),
            "trainable": sum(p.numel() for p in net.parameters() if p.requires_grad),
        },
    }
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_path:
        results["best"] = {
            "ckpt_path": checkpoint.best_model_path,
            "score": None if checkpoint.best_model_score is None else float(checkpoint.best_model_score),
            "monitor": checkpoint.monitor,
        }
    if trainer.is_global_zero and datamodule.val_set is not None:
        samples = [datamodule.val_set[i] for i in range(min(2, len(datamodule.val_set)))]
        samples = [s for s in samples if s is not None and s["lq"] is not None]
        pairs = [batch_flows(s, "flow_pairs", model.flow_source, "val clip") for s in samples]
        diversity = measure_offset_diversity(
            model.evaluation_net("val"), [s["lq"] for s in samples], model.eval_cfg["padding"], pairs
        )
        results["offset_diversity"] = None if diversity is None else diversity["mean"]
        results["offset_diversity_modules"] = None if diversity is None else diversity["modules"]
    return results
