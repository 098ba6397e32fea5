"""The LightningModule that trains and evaluates any vsrlab architecture."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchmetrics import MaxMetric

from vsrlab.archs.pretrained import PRETRAINED_KEYS, build_arch, load_arch_weights
from vsrlab.data.degradations import matlab_imresize_tensor
from vsrlab.data.fingerprint import alignment_problem, data_report
from vsrlab.data.sampling import window_indices
from vsrlab.metrics import VideoPSNR, VideoSSIM
from vsrlab.ops import (
    alignment_modules,
    offset_diversity,
    offsets_per_frame,
    record_offsets,
    resize_flow,
    sampling_positions,
)
from vsrlab.utils.images import enlarge, flow_to_rgb, heatmap_rgb, save_rgb, side_by_side, to_uint8_hwc

log = logging.getLogger(__name__)

_DEFAULT_EMA = {"decay": 0.999, "start_step": 0, "validate": True, "test": True}
_DEFAULT_EVAL = {
    "padding": "reflection",
    "chunk_size": 8,
    "log_images": 2,
    "save_images": False,
    "log_offsets": 4,
}
_METRIC_KEYS = ("test_y_channel", "crop_border")
_PROTOCOL_KEYS = ("frames", "mirror")
_FLOW_SOURCES = ("batch", "spynet")


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class VSRModule(pl.LightningModule):
    """Builds the architecture from its config; trains on windows, validates on whole clips.

    Args:
        arch: config of the ``nn.Module`` (``_target_`` and arguments), instantiated here so that a
            checkpoint alone rebuilds the model (``VSRModule.load_from_checkpoint``).
        loss: config of the pixel loss (Charbonnier by default).
        optimizer: config of the optimizer, without ``params``.
        scheduler: config of the LR scheduler (stepped every iteration), without ``optimizer``.
        metrics: the dataset's evaluation protocol: ``test_y_channel`` and ``crop_border`` of the
            scores, ``frames`` (``all``, or ``center``: only each clip's middle frame is predicted
            and scored, Vimeo-90K-T) and ``mirror`` (recurrent networks see the clip followed by
            its time reversal and each frame's output is the mean of its two predictions, the
            MMagic/BasicSR Vimeo-90K-T convention).
        evaluation: ``padding`` of sliding windows at clip ends, ``chunk_size`` windows per forward,
            ``log_images`` clips whose centre frame is saved as LR-bicubic | output | GT (and, for
            sliding-window networks, the offsets of up to ``log_offsets`` alignment modules as
            mean-offset colour field | offset diversity heatmap), ``save_images`` writes every
            scored output frame as PNG (``images/<stage>/<clip>/``).
        offset_fidelity: ``{loss: <OffsetFidelityLoss config>, flow: 'batch' | 'spynet',
            spynet_path: <weights of the frozen SPyNet teacher>}``: adds the loss over the offsets
            of every alignment module of a sliding-window network (Chan et al. 2021, Eq. 5). The
            flow to the centre frame comes from the batch (``flow``, e.g. the synthetic data's
            true flow or precomputed flow files) or from a frozen SPyNet on the LR frames; it is
            resized to each module's resolution (pyramid levels) with its vectors rescaled.
        aligned_lr_loss: loss config between the network's ``last_aligned_lr`` ``(B, T, C, h, w)``
            and the centre LR frame (TDAN's auxiliary loss).
        lr_mult: ``{module prefix: factor}``, e.g. ``{spynet: 0.125}`` (BasicVSR's flow learning rate).
        freeze: ``[{modules: [prefix, ...] or ['*'], exclude: [prefix, ...], until_step: n}]``:
            those parameters get no updates before step ``n`` (BasicVSR's frozen SPyNet; EDVR's
            ``tsa_iter``, which trains only the fusion: ``{modules: ['*'], exclude: [fusion]}``).
        ema: ``{decay: 0.999, start_step: 0, validate: true, test: true}`` keeps an exponential
            moving average of the network's parameters, ``net_ema`` (BasicSR's ``net_g_ema``: a
            copy of the initial, possibly pretrained, weights, then after every optimizer step
            ``ema = decay * ema + (1 - decay) * weights``; before ``start_step`` it follows the
            weights). It is part of the checkpoint (a resumed run continues it exactly);
            ``validate`` / ``test`` evaluate it instead of the trained weights; exported as
            BasicSR's ``params_ema``. Buffers are not averaged (as BasicSR).

    ``arch.pretrained`` (and ``arch.pretrained_strict``, default true) loads a BasicSR, MMagic or
    vsrlab checkpoint into the network when a run starts from scratch (not when it resumes).
    """

    def __init__(
        self,
        arch: dict[str, Any],
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
        offset_fidelity: dict[str, Any] | None = None,
        aligned_lr_loss: dict[str, Any] | None = None,
        lr_mult: dict[str, float] | None = None,
        freeze: list[dict[str, Any]] | None = None,
        ema: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        (
            arch,
            loss,
            optimizer,
            scheduler,
            metrics,
            evaluation,
            offset_fidelity,
            aligned_lr_loss,
            lr_mult,
            freeze,
            ema,
        ) = map(
            _plain,
            (
                arch,
                loss,
                optimizer,
                scheduler,
                metrics,
                evaluation,
                offset_fidelity,
                aligned_lr_loss,
                lr_mult,
                freeze,
                ema,
            ),
        )
        self.save_hyperparameters(
            {
                "arch": arch,
                "loss": loss,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "metrics": metrics,
                "evaluation": evaluation,
                "offset_fidelity": offset_fidelity,
                "aligned_lr_loss": aligned_lr_loss,
                "lr_mult": lr_mult,
                "freeze": freeze,
                "ema": ema,
            }
        )
        self.pretrained = {k: arch.get(k) for k in PRETRAINED_KEYS}
        self.net: nn.Module = build_arch(arch, load_weights=False)
        self.ema = self._check_ema(ema)
        self.net_ema: AveragedModel | None = None
        if self.ema is not None:
            self.net_ema = AveragedModel(
                self.net, multi_avg_fn=get_ema_multi_avg_fn(self.ema["decay"]), use_buffers=False
            ).requires_grad_(False)
        self.loss_fn: nn.Module | None = instantiate(loss) if loss else None
        self.aligned_lr_loss: nn.Module | None = instantiate(aligned_lr_loss) if aligned_lr_loss else None
        self.offset_fidelity = dict(offset_fidelity or {})
        self.offset_loss: nn.Module | None = None
        if self.offset_fidelity.get("loss"):
            if self.is_recurrent:
                raise ValueError(
                    f"model.offset_fidelity needs a sliding-window network (one with num_frame); "
                    f"{type(self.net).__name__} is recurrent"
                )
            if self.offset_fidelity.get("flow", "batch") not in _FLOW_SOURCES:
                raise ValueError(
                    f"model.offset_fidelity.flow must be one of {_FLOW_SOURCES}, "
                    f"got {self.offset_fidelity.get('flow')!r}"
                )
            self.offset_loss = instantiate(self.offset_fidelity["loss"])
        self._flow_teacher: nn.Module | None = None
        self.lr_mult = dict(lr_mult or {})
        self.freeze_rules = list(freeze or [])
        self._check_prefixes()
        self._weights_restored = False
        self.eval_cfg = {**_DEFAULT_EVAL, **(evaluation or {})}
        metrics = dict(metrics or {})
        unknown = sorted(set(metrics) - set(_METRIC_KEYS) - set(_PROTOCOL_KEYS))
        if unknown:
            raise ValueError(
                f"unknown evaluation protocol keys {unknown} (data.protocol / model.metrics); "
                f"known: {[*_METRIC_KEYS, *_PROTOCOL_KEYS]}"
            )
        self.protocol = {"frames": metrics.pop("frames", "all"), "mirror": bool(metrics.pop("mirror", False))}
        if self.protocol["frames"] not in ("all", "center"):
            raise ValueError(
                f"data.protocol.frames must be 'all' or 'center', got {self.protocol['frames']!r}"
            )
        self.skipped_clips = 0
        metric_args = {"test_y_channel": False, "crop_border": 0, **metrics}
        self.val_metrics = self._make_metrics(metric_args)
        self.test_metrics = self._make_metrics(metric_args)
        self.val_psnr_best = MaxMetric()
        self.val_history: list[dict[str, float]] = []  # one entry per validation, kept in checkpoints
        self.clip_names: dict[int, str] = {}
        self.clip_fingerprints: dict[str, dict[str, Any]] = {}  # of the current evaluation (data.fingerprint)
        self._reported: set[str] = set()

    @staticmethod
    def _check_ema(ema: dict[str, Any] | None) -> dict[str, Any] | None:
        if not ema:
            return None
        unknown = sorted(set(ema) - set(_DEFAULT_EMA))
        if unknown:
            raise KeyError(f"unknown model.ema keys {unknown}; known: {sorted(_DEFAULT_EMA)}")
        ema = {**_DEFAULT_EMA, **ema}
        if not 0.0 < float(ema["decay"]) < 1.0:
            raise ValueError(f"model.ema.decay must be in (0, 1), got {ema['decay']}")
        return ema

    def evaluation_net(self, stage: str = "test") -> nn.Module:
        """The network ``stage`` (``val`` or ``test``; inference is ``test``) evaluates: the EMA
        weights when ``model.ema`` says so, else the trained ones."""
        if self.net_ema is not None and self.ema["validate" if stage == "val" else "test"]:
            return self.net_ema.module
        return self.net

    def update_ema(self, step: int) -> None:
        """After optimizer step ``step`` (1 for the first): blend the weights into the EMA (copy
        them up to ``start_step``)."""
        if self.net_ema is None:
            return
        with torch.no_grad():
            if step <= int(self.ema["start_step"]):
                for average, current in zip(
                    self.net_ema.module.parameters(), self.net.parameters(), strict=True
                ):
                    average.copy_(current)
            else:
                self.net_ema.update_parameters(self.net)

    def on_fit_start(self) -> None:
        # a fresh run's EMA starts from the initial (pretrained) weights, as BasicSR's model_ema(0)
        if self.net_ema is not None and self.trainer.ckpt_path is None and self.global_step == 0:
            with torch.no_grad():
                self.net_ema.n_averaged.zero_()
                self.net_ema.update_parameters(self.net)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # here, not in on_train_batch_end: callbacks that checkpoint at the step's end (pre-emption,
        # ModelCheckpoint every n steps) run before the module's hook and must see the update;
        # global_step counts this step only once the hook returned
        self.update_ema(self.global_step + 1)

    @staticmethod
    def _make_metrics(args: dict[str, Any]) -> nn.ModuleDict:
        return nn.ModuleDict(
            {"psnr": VideoPSNR(**args), "ssim": VideoSSIM(**args), "psnr_bicubic": VideoPSNR(**args)}
        )

    # ------------------------------------------------------------------ model
    def forward(self, lq: Tensor) -> Tensor:
        return self.net(lq)

    @property
    def is_recurrent(self) -> bool:
        return not hasattr(self.net, "num_frame")

    def predict_clip(
        self, lq: Tensor, frames: list[int] | None = None, mirror: bool = False, stage: str = "test"
    ) -> Tensor:
        """Super-resolve a clip ``(L, C, h, w)`` -> ``(len(frames), C, s*h, s*w)`` with the network
        ``stage`` evaluates (:meth:`evaluation_net`).

        Sliding-window networks see one window per wanted frame (default: every frame), padded
        at the clip ends as ``evaluation.padding`` says; recurrent networks see the whole clip,
        with ``mirror`` followed by its time reversal (outputs of a frame's two positions averaged).
        """
        net = self.evaluation_net(stage)
        length = lq.shape[0]
        frames = list(range(length)) if frames is None else list(frames)
        if self.is_recurrent:
            if mirror:
                out = net(torch.cat([lq, lq.flip(0)]).unsqueeze(0))[0]
                out = 0.5 * (out[:length] + out[length:].flip(0))
            else:
                out = net(lq.unsqueeze(0))[0]
            return out[frames]
        n = self.net.num_frame
        windows = torch.tensor(
            [window_indices(t, length, n, self.eval_cfg["padding"]) for t in frames], device=lq.device
        )
        chunk = int(self.eval_cfg["chunk_size"])
        return torch.cat([net(lq[windows[s : s + chunk]]) for s in range(0, len(frames), chunk)])

    def window_offsets(self, lq: Tensor, stage: str = "val") -> dict[str, Tensor]:
        """Offsets of every alignment module for the window centred on the middle frame of a clip
        ``(L, C, h, w)`` (sliding-window networks): ``{module: (calls*B, 2*G*N, h', w')}``."""
        if self.is_recurrent:
            raise ValueError(
                f"window_offsets needs a sliding-window network, {type(self.net).__name__} is recurrent"
            )
        net = self.evaluation_net(stage)
        length = lq.shape[0]
        window = torch.tensor(
            window_indices(length // 2, length, self.net.num_frame, self.eval_cfg["padding"]),
            device=lq.device,
        )
        with torch.no_grad(), record_offsets(net) as records:
            net(lq[window].unsqueeze(0))
        return {name: torch.cat(calls) for name, calls in records.items() if calls}

    def measure_offset_diversity(self, clips: list[Tensor]) -> dict[str, Any] | None:
        """Offset diversity (:func:`vsrlab.ops.offset_diversity`, pixels) of every alignment module
        on the centre windows of ``clips``, and their mean: ``{'mean', 'modules': {name: value}}``;
        None for networks without deformable alignment or recurrent ones."""
        modules = dict(alignment_modules(self.net))
        if self.is_recurrent or not modules or not clips:
            return None
        per_module: dict[str, list[float]] = {}
        for lq in clips:
            for name, offset in self.window_offsets(lq.to(self.device)).items():
                per_module.setdefault(name, []).append(
                    float(offset_diversity(offset, modules[name].taps).mean())
                )
        values = {name: sum(v) / len(v) for name, v in per_module.items()}
        return {"mean": sum(values.values()) / len(values), "modules": values} if values else None

    def _log_offsets(self, stage: str, clip_name: str, lq: Tensor) -> None:
        """Save and log the offsets of the first frame of the centre window (farthest from the
        centre) per alignment module: mean offset of group 0 as a colour field | diversity map."""
        modules = dict(alignment_modules(self.net))
        limit = int(self.eval_cfg.get("log_offsets", 0))
        if self.is_recurrent or not modules or limit <= 0:
            return
        for name, offset in list(self.window_offsets(lq, stage).items())[:limit]:
            module = modules[name]
            first = offset[:1].float()
            mean_yx = sampling_positions(first, module.taps)[0, 0].mean(0)  # group 0: (2, h, w) as (dy, dx)
            flow = mean_yx.flip(0).permute(1, 2, 0).cpu().numpy()
            diversity = offset_diversity(first, module.taps)[0].mean(0).cpu().numpy()
            grid = side_by_side(enlarge(flow_to_rgb(flow)), enlarge(heatmap_rgb(diversity)))
            path = (
                Path(self.trainer.default_root_dir)
                / "images"
                / stage
                / f"step{self.global_step:07d}_{clip_name}_offsets_{name}.png"
            )
            save_rgb(path, grid)
            for logger in self.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_image(
                        key=f"{stage}/offsets/{name}",
                        images=[grid],
                        step=self.global_step,
                        caption=[
                            f"{clip_name}: mean offset (hue = direction, max "
                            f"{float(np.hypot(flow[..., 0], flow[..., 1]).max()):.2f} px) | offset diversity "
                            f"(max {float(diversity.max()):.2f} px)"
                        ],
                    )

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if self.loss_fn is None:
            raise ValueError("model.loss is not set: this module cannot train")
        lq, gt = batch["lq"], batch["gt"]
        if not self.is_recurrent and lq.shape[1] != self.net.num_frame:
            raise ValueError(
                f"training windows have {lq.shape[1]} frames but arch.num_frame is "
                f"{self.net.num_frame}: set data.train.num_frames to match"
            )
        with record_offsets(self.net) as offsets:
            out = self.net(lq)
        if out.dim() == 5:
            target = gt
        elif gt.shape[1] == 1:  # datasets that load only the window's centre GT
            target = gt[:, 0]
        else:
            target = gt[:, getattr(self.net, "center_frame_idx", gt.shape[1] // 2)]
        terms = {"pix": self.loss_fn(out, target)}
        if self.offset_loss is not None:
            terms["offset"] = self.offset_fidelity_term(offsets, batch)
        if self.aligned_lr_loss is not None:
            aligned = getattr(self.net, "last_aligned_lr", None)
            if aligned is None:
                raise ValueError(
                    f"model.aligned_lr_loss is set but {type(self.net).__name__} has no last_aligned_lr"
                )
            center = lq[:, self.net.center_frame_idx].unsqueeze(1).expand_as(aligned)
            terms["aligned_lr"] = self.aligned_lr_loss(aligned, center)
        loss = sum(terms.values())
        self.log("train/loss", loss, prog_bar=True, batch_size=lq.shape[0])
        if len(terms) > 1:
            self.log_dict({f"train/loss_{k}": v for k, v in terms.items()}, batch_size=lq.shape[0])
        return loss

    def teacher_flow(self, lq: Tensor) -> Tensor:
        """Flow ``(B, T, 2, h, w)`` from the centre frame to every frame by a frozen SPyNet."""
        if self._flow_teacher is None:
            from vsrlab.archs.spynet_arch import SPyNet

            if not self.offset_fidelity.get("spynet_path"):
                rank_zero_warn(
                    "model.offset_fidelity.spynet_path is null: the SPyNet teacher of the offset-fidelity "
                    "loss has random weights and its flow is meaningless (fine for smoke tests only)"
                )
            teacher = SPyNet(self.offset_fidelity.get("spynet_path")).eval().requires_grad_(False)
            object.__setattr__(self, "_flow_teacher", teacher)  # not a submodule: never saved or trained
        teacher = self._flow_teacher.to(lq.device)
        b, t = lq.shape[:2]
        center = lq[:, self.net.center_frame_idx].unsqueeze(1).expand_as(lq)
        with torch.no_grad():
            flow = teacher(center.reshape(b * t, *lq.shape[2:]), lq.reshape(b * t, *lq.shape[2:]))
        return flow.view(b, t, 2, *lq.shape[-2:])

    def offset_fidelity_term(self, offsets: dict[str, list[Tensor]], batch: dict[str, Any]) -> Tensor:
        """Offset-fidelity loss summed over every alignment module's offsets for this batch."""
        lq = batch["lq"]
        b, t = lq.shape[:2]
        if self.offset_fidelity.get("flow", "batch") == "batch":
            if "flow" not in batch:
                raise KeyError(
                    "model.offset_fidelity.flow='batch' but the batch has no 'flow' "
                    "(use data with flow, or offset_fidelity.flow=spynet)"
                )
            flow = batch["flow"]
        else:
            flow = self.teacher_flow(lq)
        total = lq.new_zeros(())
        for calls in offsets.values():
            if not calls:
                continue
            offset = offsets_per_frame(calls, b, t).flatten(0, 1)
            target = resize_flow(flow.flatten(0, 1).to(offset.dtype), tuple(offset.shape[-2:]))
            total = total + self.offset_loss(offset, target)
        return total

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError(
                f"{type(self.net).__name__} has no trainable parameters; it can only be evaluated"
            )
        if not self.hparams.optimizer:
            raise ValueError("model.optimizer is not set")
        make_optimizer = instantiate(self.hparams.optimizer, _partial_=True)
        optimizer = make_optimizer(self.param_groups(self.hparams.optimizer["lr"]))
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _check_prefixes(self) -> None:
        names = [n for n, _ in self.net.named_parameters()]
        prefixes = list(self.lr_mult)
        for rule in self.freeze_rules:
            if "until_step" not in rule or "modules" not in rule:
                raise KeyError(f"model.freeze entries need 'modules' and 'until_step', got {rule}")
            prefixes += [p for p in rule["modules"] if p != "*"] + list(rule.get("exclude", []))
        for prefix in prefixes:
            if not any(n == prefix or n.startswith(prefix + ".") for n in names):
                raise KeyError(
                    f"no parameters of {type(self.net).__name__} under {prefix!r} "
                    f"(model.lr_mult / model.freeze); top-level modules: "
                    f"{sorted({n.split('.')[0] for n in names})}"
                )

    @staticmethod
    def _under(name: str, prefixes: list[str]) -> bool:
        return any(p == "*" or name == p or name.startswith(p + ".") for p in prefixes)

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Trainable parameters grouped by ``lr_mult`` (one group per distinct multiplier)."""
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                mult = next((m for prefix, m in self.lr_mult.items() if self._under(name, [prefix])), 1.0)
                groups.setdefault(float(mult), []).append(p)
        return [{"params": ps, "lr": base_lr * m} for m, ps in sorted(groups.items(), reverse=True)]

    def frozen_parameters(self, step: int) -> list[nn.Parameter]:
        """Parameters that ``freeze`` holds fixed at ``step``."""
        frozen = []
        for rule in self.freeze_rules:
            if step < int(rule["until_step"]):
                frozen += [
                    p
                    for n, p in self.net.named_parameters()
                    if self._under(n, rule["modules"]) and not self._under(n, list(rule.get("exclude", [])))
                ]
        return frozen

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # dropping the gradient makes the optimizer skip the parameter entirely (no momentum,
        # no weight decay), unlike requires_grad=False this keeps DDP's reducer unchanged
        for p in self.frozen_parameters(self.global_step):
            p.grad = None

    # ------------------------------------------------------------ pretrained
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._weights_restored = True
        self.val_history = list(checkpoint.get("vsrlab_val_history", []))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vsrlab_val_history"] = list(self.val_history)

    def setup(self, stage: str) -> None:
        path = self.pretrained.get("pretrained")
        resuming = self._trainer is not None and self.trainer.ckpt_path is not None
        if path and not resuming and not self._weights_restored:
            report = load_arch_weights(self.net, self.pretrained)
            skipped = {k: v for k, v in report.items() if v}
            if skipped:
                rank_zero_info(f"arch.pretrained {path}: not loaded: {skipped}")

    # ------------------------------------------------------------- evaluation
    def _evaluate(
        self, batch: dict[str, Any] | None, batch_idx: int, stage: str, metrics: nn.ModuleDict
    ) -> None:
        if batch is None:  # every clip of the batch was bad and skipped (data skip_bad=true)
            self.skipped_clips += 1
            return
        lq, gt = batch["lq"], batch["gt"]
        if lq.shape[0] != 1:
            raise ValueError(f"{stage} batches must hold one clip, got {lq.shape[0]}")
        lq, gt = lq[0], gt[0]
        scale = gt.shape[-1] // lq.shape[-1]
        if gt.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
            raise ValueError(
                f"GT size {tuple(gt.shape[-2:])} is not an integer multiple of LR size "
                f"{tuple(lq.shape[-2:])} in clip {batch['key'][0]}"
            )
        length = lq.shape[0]
        frames = [length // 2] if self.protocol["frames"] == "center" else list(range(length))
        if gt.shape[0] == length:
            gt = gt[frames]
        elif gt.shape[0] != len(frames):
            raise ValueError(f"clip {batch['key'][0]} has {length} LR and {gt.shape[0]} GT frames")
        out = self.predict_clip(lq, frames, mirror=self.protocol["mirror"], stage=stage)
        bicubic = matlab_imresize_tensor(lq[frames], scale)
        clip = int(batch["clip_index"][0])
        self.clip_names[clip] = str(batch["key"][0])
        if "fingerprint" in batch:
            self._record_fingerprint(self.clip_names[clip], json.loads(batch["fingerprint"][0]))
        clip_ids = torch.full((len(frames),), clip, dtype=torch.long)
        frame_ids = torch.tensor(frames)
        metrics["psnr"].update(out, gt, clip_ids, frame_ids)
        metrics["ssim"].update(out, gt, clip_ids, frame_ids)
        metrics["psnr_bicubic"].update(bicubic, gt, clip_ids, frame_ids)
        if self.eval_cfg.get("save_images"):
            folder = Path(self.trainer.default_root_dir) / "images" / stage / self.clip_names[clip]
            for t, frame in zip(frames, to_uint8_hwc(out), strict=True):
                save_rgb(folder / f"{t:08d}.png", frame)
        if batch_idx < int(self.eval_cfg["log_images"]):
            mid = len(frames) // 2
            self._log_frame(stage, self.clip_names[clip], bicubic[mid], out[mid], gt[mid])
            self._log_offsets(stage, self.clip_names[clip], lq)

    def _record_fingerprint(self, name: str, fingerprint: dict[str, Any]) -> None:
        """Keep a clip's fingerprint for the results; warn (once per clip) when its LR frames do
        not belong to its GT (shifted, another degradation)."""
        self.clip_fingerprints[name] = fingerprint
        check = fingerprint.get("lr_check")
        problem = alignment_problem(name, check, fingerprint.get("degradation")) if check else None
        if problem and name not in self._reported:
            self._reported.add(name)
            log.warning(problem)

    def _log_frame(self, stage: str, name: str, bicubic: Tensor, out: Tensor, gt: Tensor) -> None:
        grid = side_by_side(*(to_uint8_hwc(x) for x in (bicubic, out, gt)))
        path = (
            Path(self.trainer.default_root_dir) / "images" / stage / f"step{self.global_step:07d}_{name}.png"
        )
        save_rgb(path, grid)
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key=f"{stage}/frames/{name}",
                    images=[grid],
                    step=self.global_step,
                    caption=["bicubic | output | GT"],
                )

    def _log_metrics(self, stage: str, metrics: nn.ModuleDict) -> dict[str, float]:
        values = {name: metric.compute() for name, metric in metrics.items()}
        values["psnr_gain"] = values["psnr"] - values["psnr_bicubic"]
        self.log_dict({f"{stage}/{k}": v.float() for k, v in values.items()}, sync_dist=True)
        return {k: float(v) for k, v in values.items()}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values = self._log_metrics("val", self.val_metrics)
        if not self.trainer.sanity_checking:
            self.val_psnr_best.update(torch.tensor(values["psnr"]))
            self.log("val/psnr_best", self.val_psnr_best.compute().float(), sync_dist=True)
            self.val_history.append(
                {"step": int(self.global_step), **{k: values[k] for k in ("psnr", "ssim", "psnr_bicubic")}}
            )
        for metric in self.val_metrics.values():
            metric.reset()
        self.skipped_clips = 0
        self.clip_fingerprints = {}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.test_results = self.per_clip_results(self.test_metrics)
        self._log_metrics("test", self.test_metrics)
        for metric in self.test_metrics.values():
            metric.reset()
        self.skipped_clips = 0
        self.clip_fingerprints = {}

    def per_clip_results(self, metrics: nn.ModuleDict) -> dict[str, Any]:
        """``{'clips': {name: {psnr, ssim, psnr_bicubic, frames}}, 'mean': {...}}`` of the current state,
        gathered from every process under DDP."""
        per_metric = {}
        for name, metric in metrics.items():
            with metric.sync_context():
                per_metric[name] = metric.per_clip()
        names, fingerprints = dict(self.clip_names), dict(self.clip_fingerprints)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (names, fingerprints))
            for part_names, part_fingerprints in gathered:
                names.update(part_names)
                fingerprints.update(part_fingerprints)
        clips = {}
        for clip, (_, frames) in per_metric["psnr"].items():
            row = {name: values[clip][0] for name, values in per_metric.items()}
            clips[names.get(clip, str(clip))] = {**row, "frames": frames}
        mean = {name: float(metric.compute()) for name, metric in metrics.items()}
        data = data_report(fingerprints)
        for problem in data.get("problems", []):
            rank_zero_warn(f"evaluation data: {problem}")
        return {"clips": clips, "mean": mean, "skipped_clips": self.skipped_clips, "data": data}
