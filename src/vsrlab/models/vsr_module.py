"""The LightningModule that trains and evaluates any vsrlab architecture: the recipe (steps, losses,
optimizer); evaluation (:mod:`vsrlab.models.evaluation`), clip inference, pictures, auxiliary terms,
parameter rules and the weight average live in their own modules."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
from hydra.utils import instantiate
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor
from torchmetrics import MaxMetric

from vsrlab.archs.contract import centre_frame, is_recurrent
from vsrlab.archs.pretrained import build_arch, load_arch_weights
from vsrlab.losses import OffsetFidelityTerm
from vsrlab.losses.build import build_loss_terms
from vsrlab.losses.terms import StepOutputs
from vsrlab.metrics.clip_scores import ClipScores, check_protocol
from vsrlab.metrics.motion import ClipMotion, MotionBinsConfig
from vsrlab.models.evaluation import ClipEvaluation
from vsrlab.models.flow_source import batch_flows, check_flow_error, check_flow_source, corrupt_flows
from vsrlab.models.neighbours import apply_neighbours
from vsrlab.models.speed import apply_speed_options
from vsrlab.ops import record_offsets
from vsrlab.optim.ema import ema_config, make_ema, restart_ema, update_ema
from vsrlab.optim.param_rules import ParamRules
from vsrlab.utils.instantiate import plain_container

log = logging.getLogger(__name__)

EVALUATION_DEFAULTS = {"padding": "reflection", "windows_per_forward": 8, "log_images": 2, "log_offsets": 4,
                       "save_images": False, "motion_bins": None}  # fmt: skip
SPEED_OPTIONS = ("compile", "channels_last", "checkpointing")  # change speed and memory, not results
HPARAMS = ("arch", "loss", "optimizer", "scheduler", "protocol", "evaluation", "offset_fidelity",
           "aligned_lr_loss", "lr_mult", "freeze", "ema", "flow_source", "flow_error",
           "neighbours", "level_weights", *SPEED_OPTIONS)  # fmt: skip


class VSRModule(ClipEvaluation, pl.LightningModule):
    """Builds the architecture from its config; trains on windows or sequences, evaluates whole clips.

    Args:
        arch: config of the ``nn.Module`` (``_target_`` and arguments), built here so that a checkpoint
            alone rebuilds the model; ``arch.pretrained`` is loaded by :meth:`load_pretrained` (at the
            start of a fresh fit, and by the evaluation apps).
        loss, optimizer, scheduler: configs of the pixel loss, the optimizer (without ``params``)
            and the LR scheduler (stepped every iteration, without ``optimizer``).
        protocol: the dataset's evaluation protocol (``data.protocol``;
            :func:`vsrlab.metrics.clip_scores.check_protocol`).
        evaluation: ``padding`` of sliding windows at clip ends and ``windows_per_forward`` windows per
            forward (:mod:`vsrlab.inference.clip`); ``log_images``, ``log_offsets`` and
            ``save_images`` configure the pictures (:class:`vsrlab.callbacks.EvaluationImages`);
            ``motion_bins`` (``{edges, flow, spynet_path}``, None: off) adds the test scores per
            motion bin (:mod:`vsrlab.metrics.motion`).
        offset_fidelity: ``{loss, flow: batch | spynet, spynet_path}``: the offset-fidelity term
            (Chan et al. 2021, Eq. 5; :class:`vsrlab.losses.OffsetFidelityTerm`), sliding-window nets.
        aligned_lr_loss: loss between the network's aligned LR frames
            (``forward(lq, return_aligned_lr=True)``) and the centre LR frame (TDAN).
        lr_mult, freeze: per-module learning rates and freezing
            (:class:`vsrlab.optim.param_rules.ParamRules`).
        ema: ``{decay, start_step, validate, test}``: a moving average of the weights, ``net_ema``
            (:mod:`vsrlab.optim.ema`), evaluated instead of the weights when ``validate`` / ``test``.
        flow_source: None (the network's own flow) or ``batch``: the data's flows go to
            ``forward(x, flows=...)`` (oracle flow; :mod:`vsrlab.models.flow_source`).
        flow_error: RMS end-point error (LR pixels) of a smooth random field added to those flows,
            a corrupted flow prior (:func:`vsrlab.models.flow_source.corrupt_flows`); 0: exact.
        neighbours: ``frames`` or ``centre``: every window its centre frame repeated, the same network
            without neighbours (:mod:`vsrlab.models.neighbours`).
        level_weights: loss weights of the levels of a cascaded network (coarse to fine), None: the
            final output only; every level's PSNR is logged either way (:mod:`vsrlab.losses.levels`).
        compile, channels_last, checkpointing: ``torch.compile`` of the network (True or its keyword
            arguments), channels-last weights, activation checkpointing (True: the arch's choice, or
            module-name patterns); applied to the trained network, not to its weight average
            (:mod:`vsrlab.models.speed`).

    The hyperparameters are stored as plain dicts and lists, so that a checkpoint holds tensors and
    plain Python objects only: ``VSRModule.load_from_checkpoint(path)`` reads it with torch's
    ``weights_only=True``. Checkpoints of earlier versions hold an OmegaConf ``ListConfig``
    (``freeze``): load those with ``weights_only=False`` (trusted files only;
    :func:`vsrlab.utils.checkpoint.read_checkpoint` falls back to it by itself).
    """

    def __init__(
        self,
        arch: dict[str, Any],
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        protocol: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        offset_fidelity: dict[str, Any] | None = None,
        aligned_lr_loss: dict[str, Any] | None = None,
        lr_mult: dict[str, float] | None = None,
        freeze: list[dict[str, Any]] | None = None,
        ema: dict[str, Any] | None = None,
        flow_source: str | None = None,
        flow_error: float = 0.0,
        neighbours: str = "frames",
        level_weights: list[float] | None = None,
        compile: bool | dict[str, Any] = False,
        channels_last: bool = False,
        checkpointing: bool | list[str] = False,
    ) -> None:
        super().__init__()
        given = locals()
        args = {name: plain_container(given[name]) for name in HPARAMS}
        self.save_hyperparameters(args)
        self.net: nn.Module = build_arch(args["arch"], load_weights=False)
        self.flow_source = check_flow_source(flow_source, self.net)
        self.flow_error = check_flow_error(flow_error, self.flow_source)
        self.neighbours = apply_neighbours(self.net, neighbours)
        self.loss_terms = build_loss_terms(
            self.net, args["loss"], args["level_weights"], args["offset_fidelity"], args["aligned_lr_loss"]
        )
        self.param_rules = ParamRules(self.net, args["lr_mult"], args["freeze"] or ())
        self.ema = ema_config(args["ema"])
        self.net_ema = make_ema(self.net, self.ema["decay"]) if self.ema else None
        apply_speed_options(self.net, args["compile"], args["channels_last"], args["checkpointing"])
        evaluation = dict(args["evaluation"] or {})
        if "chunk_size" in evaluation:  # checkpoints of earlier versions
            evaluation["windows_per_forward"] = evaluation.pop("chunk_size")
        self.eval_cfg = {**EVALUATION_DEFAULTS, **evaluation}
        self.protocol = check_protocol(args["protocol"] or {})
        scores = {k: self.protocol[k] for k in ("test_y_channel", "crop_border")}
        self.motion_bins = MotionBinsConfig.from_config(self.eval_cfg["motion_bins"])
        # the motion of test clips (its SPyNet, if any, is no submodule: never trained, never saved)
        self.clip_motion = ClipMotion(self.motion_bins) if self.motion_bins is not None else None
        motion_edges = self.motion_bins.edges if self.motion_bins is not None else None
        self.val_scores, self.test_scores = (
            ClipScores(**scores),
            ClipScores(**scores, motion_edges=motion_edges),
        )
        self.val_psnr_best = MaxMetric()
        self.val_history: list[dict[str, float]] = []  # one entry per validation, kept in checkpoints
        self.test_results: dict[str, Any] = {}

    # ------------------------------------------------------------------ model
    def forward(self, lq: Tensor) -> Tensor:
        return self.net(lq)

    @property
    def is_recurrent(self) -> bool:
        return is_recurrent(self.net)

    @property
    def _flow_teacher(self) -> nn.Module | None:
        """The frozen SPyNet of the offset-fidelity term (never a submodule, never saved)."""
        terms = [t for t in self.loss_terms if isinstance(t, OffsetFidelityTerm)]
        return terms[0]._teacher if terms else None

    def frozen_parameters(self, step: int) -> list[nn.Parameter]:
        return self.param_rules.frozen(step)

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if not self.loss_terms or self.loss_terms[0].name != "pix":
            raise ValueError("model.loss is not set: this module cannot train")
        lq, gt = batch["lq"], batch["gt"]
        if not self.is_recurrent and lq.shape[1] != self.net.num_frame:
            raise ValueError(f"training windows have {lq.shape[1]} frames but arch.num_frame is "
                             f"{self.net.num_frame}: set data.train.num_frames to match")  # fmt: skip
        needs = frozenset().union(*(term.needs for term in self.loss_terms))
        flows = batch_flows(batch, "flow", self.flow_source, "training batch")
        if flows is not None and self.flow_error:
            identity = torch.zeros(flows.shape[:2], dtype=torch.bool, device=flows.device)
            identity[:, centre_frame(self.net, flows.shape[1])] = True
            flows = corrupt_flows(flows, self.flow_error, self.global_step, identity)
        given: dict[str, Any] = {} if flows is None else {"flows": flows}
        given.update({f"return_{need}": True for need in ("levels", "aligned_lr") if need in needs})
        with record_offsets(self.net) as offsets:
            out = self.net(lq, **given)
        out, aligned = out if "aligned_lr" in needs else (out, None)
        levels = out if "levels" in needs else None
        out = levels[-1] if levels is not None else out
        # recurrent nets predict every frame; windows load their centre GT only, or the whole window
        centre = 0 if gt.shape[1] == 1 else centre_frame(self.net, gt.shape[1])
        target = gt if out.dim() == 5 else gt[:, centre]
        step = StepOutputs(batch, out, target, centre_frame(self.net, lq.shape[1]), levels, offsets, aligned)
        terms, scores = {}, {}
        for term in self.loss_terms:
            terms[term.name], named = term(step)
            scores.update({f"train/{k}": v for k, v in named.items()})
        loss = sum(terms.values())
        self.log("train/loss", loss, prog_bar=True, batch_size=lq.shape[0])
        if scores:
            self.log_dict(scores, batch_size=lq.shape[0])
        if len(terms) > 1:
            self.log_dict({f"train/loss_{k}": v for k, v in terms.items()}, batch_size=lq.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        if not any(p.requires_grad for p in self.net.parameters()):
            raise ValueError(
                f"{type(self.net).__name__} has no trainable parameters; it can only be evaluated"
            )
        if not self.hparams.optimizer:
            raise ValueError("model.optimizer is not set")
        optimizer = instantiate(self.hparams.optimizer, _partial_=True)(
            self.param_rules.param_groups(self.hparams.optimizer["lr"])
        )
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # dropping the gradient makes the optimizer skip the parameter entirely (no momentum, no
        # weight decay); unlike requires_grad=False this keeps DDP's reducer unchanged
        for p in self.param_rules.frozen(self.global_step):
            p.grad = None

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # here, not in on_train_batch_end: callbacks that checkpoint at the step's end (pre-emption,
        # ModelCheckpoint every n steps) run before the module's hook and must see the update;
        # global_step counts this step only once the hook returned
        if self.net_ema is not None:
            update_ema(self.net_ema, self.net, self.global_step + 1, int(self.ema["start_step"]))

    def load_pretrained(self) -> dict[str, list[str]]:
        """Load ``arch.pretrained`` (BasicSR, MMagic or vsrlab weights; strict unless
        ``arch.pretrained_strict`` is false) into the network; the keys left out are reported."""
        report = load_arch_weights(self.net, self.hparams.arch)
        skipped = {k: v for k, v in report.items() if v}
        if skipped:
            rank_zero_info(f"arch.pretrained {self.hparams.arch.get('pretrained')}: not loaded: {skipped}")
        return report

    def on_fit_start(self) -> None:
        if self.trainer.ckpt_path is None:  # a fresh run: pretrained weights, and an average of them
            self.load_pretrained()
            if self.net_ema is not None:
                restart_ema(self.net_ema, self.net)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_history = list(checkpoint.get("vsrlab_val_history", []))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vsrlab_val_history"] = list(self.val_history)
