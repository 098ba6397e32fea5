"""The LightningModule that trains and evaluates any vsrlab architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor
from torchmetrics import MaxMetric

from vsrlab.data.degradations import matlab_imresize_tensor
from vsrlab.data.sampling import window_indices
from vsrlab.metrics import VideoPSNR, VideoSSIM
from vsrlab.utils.images import save_rgb, side_by_side, to_uint8_hwc

_DEFAULT_EVAL = {"padding": "reflection", "chunk_size": 8, "log_images": 2}


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
        metrics: ``test_y_channel`` and ``crop_border`` of the evaluation protocol.
        evaluation: ``padding`` of sliding windows at clip ends, ``chunk_size`` windows per forward,
            ``log_images`` clips whose centre frame is saved as LR-bicubic | output | GT.
    """

    def __init__(
        self,
        arch: dict[str, Any],
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        arch, loss, optimizer, scheduler, metrics, evaluation = map(
            _plain, (arch, loss, optimizer, scheduler, metrics, evaluation))
        self.save_hyperparameters({"arch": arch, "loss": loss, "optimizer": optimizer, "scheduler": scheduler,
                                   "metrics": metrics, "evaluation": evaluation})
        self.net: nn.Module = instantiate(arch)
        self.loss_fn: nn.Module | None = instantiate(loss) if loss else None
        self.eval_cfg = {**_DEFAULT_EVAL, **(evaluation or {})}
        metric_args = {"test_y_channel": False, "crop_border": 0, **(metrics or {})}
        self.val_metrics = self._make_metrics(metric_args)
        self.test_metrics = self._make_metrics(metric_args)
        self.val_psnr_best = MaxMetric()
        self.clip_names: dict[int, str] = {}

    @staticmethod
    def _make_metrics(args: dict[str, Any]) -> nn.ModuleDict:
        return nn.ModuleDict({"psnr": VideoPSNR(**args), "ssim": VideoSSIM(**args), "psnr_bicubic": VideoPSNR(**args)})

    # ------------------------------------------------------------------ model
    def forward(self, lq: Tensor) -> Tensor:
        return self.net(lq)

    @property
    def is_recurrent(self) -> bool:
        return not hasattr(self.net, "num_frame")

    def predict_clip(self, lq: Tensor) -> Tensor:
        """Super-resolve a whole clip ``(L, C, h, w)`` -> ``(L, C, s*h, s*w)``.

        Sliding-window networks see one window per frame, padded at the clip ends as
        ``evaluation.padding`` says; recurrent networks see the whole clip.
        """
        if self.is_recurrent:
            return self.net(lq.unsqueeze(0))[0]
        n, length = self.net.num_frame, lq.shape[0]
        windows = torch.tensor([window_indices(t, length, n, self.eval_cfg["padding"]) for t in range(length)],
                               device=lq.device)
        chunk = int(self.eval_cfg["chunk_size"])
        return torch.cat([self.net(lq[windows[s:s + chunk]]) for s in range(0, length, chunk)])

    # --------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if self.loss_fn is None:
            raise ValueError("model.loss is not set: this module cannot train")
        lq, gt = batch["lq"], batch["gt"]
        if not self.is_recurrent and lq.shape[1] != self.net.num_frame:
            raise ValueError(f"training windows have {lq.shape[1]} frames but arch.num_frame is "
                             f"{self.net.num_frame}: set data.train.num_frames to match")
        out = self.net(lq)
        target = gt if out.dim() == 5 else gt[:, getattr(self.net, "center_frame_idx", gt.shape[1] // 2)]
        loss = self.loss_fn(out, target)
        self.log("train/loss", loss, prog_bar=True, batch_size=lq.shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{type(self.net).__name__} has no trainable parameters; it can only be evaluated")
        if not self.hparams.optimizer:
            raise ValueError("model.optimizer is not set")
        optimizer = instantiate(self.hparams.optimizer, params=params)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str, metrics: nn.ModuleDict) -> None:
        lq, gt = batch["lq"], batch["gt"]
        if lq.shape[0] != 1:
            raise ValueError(f"{stage} batches must hold one clip, got {lq.shape[0]}")
        lq, gt = lq[0], gt[0]
        scale = gt.shape[-1] // lq.shape[-1]
        if gt.shape[-2:] != (lq.shape[-2] * scale, lq.shape[-1] * scale):
            raise ValueError(f"GT size {tuple(gt.shape[-2:])} is not an integer multiple of LR size "
                             f"{tuple(lq.shape[-2:])} in clip {batch['key'][0]}")
        out = self.predict_clip(lq)
        bicubic = matlab_imresize_tensor(lq, scale)
        clip = int(batch["clip_index"][0])
        self.clip_names[clip] = str(batch["key"][0])
        clip_ids = torch.full((lq.shape[0],), clip, dtype=torch.long)
        frame_ids = torch.arange(lq.shape[0])
        metrics["psnr"].update(out, gt, clip_ids, frame_ids)
        metrics["ssim"].update(out, gt, clip_ids, frame_ids)
        metrics["psnr_bicubic"].update(bicubic, gt, clip_ids, frame_ids)
        if batch_idx < int(self.eval_cfg["log_images"]):
            mid = lq.shape[0] // 2
            self._log_frame(stage, self.clip_names[clip], bicubic[mid], out[mid], gt[mid])

    def _log_frame(self, stage: str, name: str, bicubic: Tensor, out: Tensor, gt: Tensor) -> None:
        grid = side_by_side(*(to_uint8_hwc(x) for x in (bicubic, out, gt)))
        path = Path(self.trainer.default_root_dir) / "images" / stage / f"step{self.global_step:07d}_{name}.png"
        save_rgb(path, grid)
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"{stage}/frames/{name}", images=[grid], step=self.global_step,
                                 caption=["bicubic | output | GT"])

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
        for metric in self.val_metrics.values():
            metric.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.test_results = self.per_clip_results(self.test_metrics)
        self._log_metrics("test", self.test_metrics)
        for metric in self.test_metrics.values():
            metric.reset()

    def per_clip_results(self, metrics: nn.ModuleDict) -> dict[str, Any]:
        """``{'clips': {name: {psnr, ssim, psnr_bicubic, frames}}, 'mean': {...}}`` of the current state."""
        per_metric = {name: metric.per_clip() for name, metric in metrics.items()}
        clips = {}
        for clip, (psnr, frames) in per_metric["psnr"].items():
            row = {name: values[clip][0] for name, values in per_metric.items()}
            clips[self.clip_names.get(clip, str(clip))] = {**row, "frames": frames}
        mean = {name: float(metric.compute()) for name, metric in metrics.items()}
        return {"clips": clips, "mean": mean}
