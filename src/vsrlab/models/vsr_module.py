"""The LightningModule that trains and evaluates any vsrlab architecture: the recipe (steps, losses,
optimizer, metrics); clip inference, pictures, auxiliary terms, parameter rules and the weight
average live in their own modules."""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor
from torchmetrics import MaxMetric

from vsrlab.archs.contract import centre_frame, is_recurrent, returns_aligned_lr, upscale
from vsrlab.archs.pretrained import build_arch, load_arch_weights
from vsrlab.inference import clip as clip_inference
from vsrlab.losses import OffsetFidelityTerm
from vsrlab.losses.levels import LevelTerm, level_psnr, level_targets
from vsrlab.metrics.clip_scores import ClipScores, check_protocol
from vsrlab.metrics.motion import ClipMotion, MotionBinsConfig
from vsrlab.models.flow_source import batch_flows, check_flow_source
from vsrlab.models.neighbours import apply_neighbours
from vsrlab.models.speed import apply_speed_options
from vsrlab.ops import record_offsets
from vsrlab.ops.resize import matlab_imresize_tensor
from vsrlab.ops.windows import window_indices
from vsrlab.optim.ema import ema_config, make_ema, restart_ema, update_ema
from vsrlab.optim.param_rules import ParamRules

log = logging.getLogger(__name__)

EVALUATION_DEFAULTS = {"padding": "reflection", "windows_per_forward": 8, "log_images": 2, "log_offsets": 4,
                       "save_images": False, "motion_bins": None}  # fmt: skip
SPEED_OPTIONS = ("compile", "channels_last", "checkpointing")  # change speed and memory, not results
HPARAMS = ("arch", "loss", "optimizer", "scheduler", "protocol", "evaluation", "offset_fidelity",
           "aligned_lr_loss", "lr_mult", "freeze", "ema", "flow_source", "neighbours",
           "level_weights", *SPEED_OPTIONS)  # fmt: skip
VAL_HISTORY_KEYS = ("psnr", "ssim", "psnr_bicubic")


def _plain(cfg: Any) -> Any:
    """``cfg`` with every OmegaConf container (also inside dicts, lists and tuples) as plain dicts and
    lists: the hyperparameters go into checkpoints, which ``torch.load(weights_only=True)`` (torch's
    default, used by ``VSRModule.load_from_checkpoint``) reads only when they hold plain Python objects
    (a ``ListConfig`` such as ``freeze`` made it fail)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, dict):
        return {k: _plain(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [_plain(v) for v in cfg]
    if isinstance(cfg, tuple):
        return tuple(_plain(v) for v in cfg)
    return cfg


class VSRModule(pl.LightningModule):
    """Builds the architecture from its config; trains on windows or sequences, evaluates whole clips.

    Args:
        arch: config of the ``nn.Module`` (``_target_`` and arguments), built here so that a checkpoint
            alone rebuilds the model; ``arch.pretrained`` is loaded by :meth:`load_pretrained` (at the
            start of a fresh fit, and by the evaluation apps).
        loss, optimizer, scheduler: configs of the pixel loss, the optimizer (without ``params``)
            and the LR scheduler (stepped every iteration, without ``optimizer``).
        protocol: the dataset's evaluation protocol (``data.protocol``;
            :func:`vsrlab.metrics.clip_scores.check_protocol`); ``metrics``: its old name.
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
        metrics: dict[str, Any] | None = None,
        flow_source: str | None = None,
        neighbours: str = "frames",
        level_weights: list[float] | None = None,
        compile: bool | dict[str, Any] = False,
        channels_last: bool = False,
        checkpointing: bool | list[str] = False,
    ) -> None:
        super().__init__()
        if metrics is not None:  # checkpoints and configs of earlier versions
            warnings.warn(
                "VSRModule(metrics=...) is now protocol=... (model.protocol)", FutureWarning, stacklevel=2
            )
            protocol = protocol if protocol is not None else metrics
        given = locals()
        args = {name: _plain(given[name]) for name in HPARAMS}
        self.save_hyperparameters(args)
        self.net: nn.Module = build_arch(args["arch"], load_weights=False)
        self.flow_source = check_flow_source(flow_source, self.net)
        self.neighbours = apply_neighbours(self.net, neighbours)
        self.loss_fn = instantiate(loss) if loss else None
        self.aligned_lr_loss = instantiate(args["aligned_lr_loss"]) if aligned_lr_loss else None
        if self.aligned_lr_loss and not returns_aligned_lr(self.net):
            raise ValueError(f"model.aligned_lr_loss: {type(self.net).__name__} returns no aligned LR frames")
        self.offset_fidelity = OffsetFidelityTerm.from_config(args["offset_fidelity"], self.net)
        self.level_term = LevelTerm.from_config(args["level_weights"], self.net)
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
        return None if self.offset_fidelity is None else self.offset_fidelity._teacher

    def evaluation_net(self, stage: str = "test") -> nn.Module:
        """The network ``stage`` (``val`` or ``test``; inference is ``test``) evaluates: the moving
        average when ``model.ema`` says so, else the trained weights."""
        if self.net_ema is not None and self.ema["validate" if stage == "val" else "test"]:
            return self.net_ema.module
        return self.net

    def predict_clip(self, lq: Tensor, frames: list[int] | None = None, mirror: bool = False,
                     stage: str = "test", flow_pairs: Tensor | None = None) -> Tensor:  # fmt: skip
        """:func:`vsrlab.inference.clip.predict_clip` with the network ``stage`` evaluates and the
        module's ``evaluation`` options: ``(L, C, h, w)`` -> ``(len(frames), C, s*h, s*w)``."""
        per_forward = int(self.eval_cfg["windows_per_forward"])
        return clip_inference.predict_clip(self.evaluation_net(stage), lq, frames, mirror=mirror,
                                           padding=self.eval_cfg["padding"], flow_pairs=flow_pairs,
                                           windows_per_forward=per_forward)  # fmt: skip

    def refuse_batch_flows(self, what: str) -> None:
        """Raise naming ``model.flow_source`` when the network takes the data's flows, which ``what``
        (a video stream, frames from a notebook) does not carry."""
        batch_flows({}, "flow_pairs", self.flow_source, what)

    @torch.no_grad()
    def super_resolve(self, frames: Any, frames_per_chunk: int = 32, overlap: int | None = None,
                      pad_to: int = 4) -> Any:  # fmt: skip
        """Super-resolve a clip of any length, streamed (:func:`vsrlab.inference.stream.super_resolve_stream`)
        on the module's device with the evaluated network and its evaluation options.

        ``frames``: ``(T, H, W, 3)`` uint8 RGB (an array, or a sequence of ``(H, W, 3)`` frames) ->
        ``(T, s*H, s*W, 3)`` uint8; or a ``(T, C, h, w)`` float tensor in [0, 1] -> ``(T, C, s*h, s*w)``
        float in [0, 1]. ``pad_to``: frames are reflect-padded to multiples of it (EDVR's pyramid needs 4)
        and the output cropped back."""
        from vsrlab.inference.stream import super_resolve_stream
        from vsrlab.utils.images import to_uint8_hwc

        self.refuse_batch_flows("a clip given to super_resolve")
        net = self.evaluation_net().eval()
        device = next(iter([*net.parameters(), *net.buffers()]), torch.empty(0, device=self.device)).device
        as_tensor = isinstance(frames, Tensor)
        stream = super_resolve_stream(
            net, iter(frames.unbind(0) if as_tensor else frames), frames_per_chunk, overlap, pad_to, device,
            padding=self.eval_cfg["padding"], windows_per_forward=int(self.eval_cfg["windows_per_forward"]),
        )  # fmt: skip
        out = torch.cat(list(stream)).clamp_(0, 1)
        return out if as_tensor else to_uint8_hwc(out)

    def frozen_parameters(self, step: int) -> list[nn.Parameter]:
        return self.param_rules.frozen(step)

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if self.loss_fn is None:
            raise ValueError("model.loss is not set: this module cannot train")
        lq, gt = batch["lq"], batch["gt"]
        if not self.is_recurrent and lq.shape[1] != self.net.num_frame:
            raise ValueError(f"training windows have {lq.shape[1]} frames but arch.num_frame is "
                             f"{self.net.num_frame}: set data.train.num_frames to match")  # fmt: skip
        flows = batch_flows(batch, "flow", self.flow_source, "training batch")
        given = {} if flows is None else {"flows": flows}
        if self.level_term is not None:
            given["return_levels"] = True
        with record_offsets(self.net) as offsets:
            out, aligned = (self.net(lq, return_aligned_lr=True, **given) if self.aligned_lr_loss
                            else (self.net(lq, **given), None))  # fmt: skip
        levels = out if self.level_term is not None else None
        out = levels[-1] if levels is not None else out
        # recurrent nets predict every frame; windows load their centre GT only, or the whole window
        centre = 0 if gt.shape[1] == 1 else centre_frame(self.net, gt.shape[1])
        target = gt if out.dim() == 5 else gt[:, centre]
        if levels is not None:
            pix, psnrs = self.level_term(levels, target, self.loss_fn)
            named = {f"train/psnr_level{i + 1}": v for i, v in enumerate(psnrs)}
            self.log_dict(named, batch_size=lq.shape[0])
            terms = {"pix": pix}
        else:
            terms = {"pix": self.loss_fn(out, target)}
        if self.offset_fidelity is not None:
            terms["offset"] = self.offset_fidelity(offsets, batch, self.net.center_frame_idx)
        if aligned is not None:
            terms["aligned_lr"] = self.aligned_lr_loss(
                aligned, lq[:, self.net.center_frame_idx, None].expand_as(aligned)
            )
        loss = sum(terms.values())
        self.log("train/loss", loss, prog_bar=True, batch_size=lq.shape[0])
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

    # ------------------------------------------------------------- evaluation
    def _evaluate(
        self, batch: dict[str, Any] | None, stage: str, scores: ClipScores
    ) -> dict[str, Any] | None:
        """Predict and score the clip of ``batch``; returns what the picture callback draws."""
        if batch is None:  # every clip of the batch was bad and skipped (data skip_bad=true)
            scores.skipped += 1
            return None
        lq, gt, name = batch["lq"], batch["gt"], str(batch["key"][0])
        if lq.shape[0] != 1:
            raise ValueError(f"{stage} batches must hold one clip, got {lq.shape[0]}")
        lq, gt = lq[0], gt[0]
        scale = gt.shape[-1] // lq.shape[-1]
        if gt.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
            raise ValueError(f"GT size {tuple(gt.shape[-2:])} is not an integer multiple of LR size "
                             f"{tuple(lq.shape[-2:])} in clip {name}")  # fmt: skip
        declared = upscale(self.net)
        if declared is not None and declared != scale:
            sizes = f"LR {tuple(lq.shape[-2:])}, GT {tuple(gt.shape[-2:])}"
            fix = f"set arch.upscale={scale}"
            raise ValueError(f"arch.upscale={declared} but clip {name} is x{scale} ({sizes}): {fix}")
        length = lq.shape[0]
        frames = [length // 2] if self.protocol["frames"] == "center" else list(range(length))
        if gt.shape[0] == length:
            gt = gt[frames]
        elif gt.shape[0] != len(frames):
            raise ValueError(f"clip {name} has {length} LR and {gt.shape[0]} GT frames")
        pairs = batch_flows(batch, "flow_pairs", self.flow_source, f"{stage} batch")
        pairs = None if pairs is None else pairs[0]  # (L, L, 2, h, w): the clip's flows (oracle flow)
        out = self.predict_clip(lq, frames, mirror=self.protocol["mirror"], stage=stage, flow_pairs=pairs)
        bicubic = matlab_imresize_tensor(lq[frames], scale)
        fingerprint = json.loads(batch["fingerprint"][0]) if "fingerprint" in batch else None
        use_motion = scores.motion is not None and self.clip_motion is not None
        motion = self.clip_motion(batch, lq, frames) if use_motion else None
        scores.update(int(batch["clip_index"][0]), name, frames, out, bicubic, gt, fingerprint, motion)
        if self.level_term is not None and stage == "val":
            self._log_level_psnr(lq, gt[len(frames) // 2 : len(frames) // 2 + 1], frames[len(frames) // 2])
        return {"clip": name, "frames": frames, "lq": lq, "out": out, "bicubic": bicubic, "gt": gt,
                "flow_pairs": pairs}  # fmt: skip

    def _log_level_psnr(self, lq: Tensor, gt: Tensor, frame: int) -> None:
        """PSNR of every level of the window centred on ``frame`` (cascaded networks, validation)."""
        window = window_indices(frame, lq.shape[0], self.net.num_frame, self.eval_cfg["padding"])
        levels = self.evaluation_net("val")(lq[window][None], return_levels=True)
        psnrs = level_psnr(levels, level_targets(gt, [tuple(x.shape[-2:]) for x in levels]))
        named = {f"val/psnr_level{i + 1}": v for i, v in enumerate(psnrs)}
        self.log_dict(named, batch_size=1, sync_dist=True)

    def _log_scores(self, stage: str, scores: ClipScores) -> dict[str, float]:
        values = scores.compute()
        self.log_dict({f"{stage}/{k}": v.float() for k, v in values.items()}, sync_dist=True)
        return {k: float(v) for k, v in values.items()}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any] | None:
        return self._evaluate(batch, "val", self.val_scores)

    def on_validation_epoch_end(self) -> None:
        values = self._log_scores("val", self.val_scores)
        if not self.trainer.sanity_checking:
            self.val_psnr_best.update(torch.tensor(values["psnr"]))
            self.log("val/psnr_best", self.val_psnr_best.compute().float(), sync_dist=True)
            self.val_history.append(
                {"step": int(self.global_step), **{k: values[k] for k in VAL_HISTORY_KEYS}}
            )
        self.val_scores.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any] | None:
        return self._evaluate(batch, "test", self.test_scores)

    def on_test_epoch_end(self) -> None:
        self.test_results = self.test_scores.results()
        self._log_scores("test", self.test_scores)
        self.test_scores.reset()
