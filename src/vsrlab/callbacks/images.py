"""Pictures of an evaluation: for the first clips, the centre frame as bicubic | output | GT and, for
sliding-window networks, each alignment module's offsets (mean offset colour-coded by direction |
pixelwise offset diversity); optionally every scored output frame. Saved as PNG under
``<run dir>/images/<stage>/`` and logged to W&B."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

from vsrlab.archs.contract import is_recurrent
from vsrlab.inference.clip import window_offsets
from vsrlab.ops import alignment_modules, offset_diversity, sampling_positions
from vsrlab.utils.images import enlarge, flow_to_rgb, heatmap_rgb, save_rgb, side_by_side, to_uint8_hwc


class EvaluationImages(pl.Callback):
    """Images of validation and test clips.

    Args:
        log_images: clips (the first ones of each evaluation) whose centre frame is saved as
            bicubic | output | GT, with their offset fields.
        log_offsets: alignment modules whose offsets are drawn, at most.
        save_images: also write every scored output frame (``images/<stage>/<clip>/<frame>.png``).

    Reads what :class:`vsrlab.models.VSRModule`'s validation and test steps return
    (``clip``, ``frames``, ``lq``, ``out``, ``bicubic``, ``gt``; ``flow_pairs``, given flows or None).
    """

    def __init__(self, log_images: int = 2, log_offsets: int = 4, save_images: bool = False) -> None:
        super().__init__()
        self.log_images, self.log_offsets, self.save_images = (
            int(log_images),
            int(log_offsets),
            bool(save_images),
        )

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._handle(trainer, pl_module, "val", outputs, batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._handle(trainer, pl_module, "test", outputs, batch_idx)

    def _handle(self, trainer: pl.Trainer, module: Any, stage: str, outputs: Any, batch_idx: int) -> None:
        if not outputs:
            return
        folder = Path(trainer.default_root_dir) / "images" / stage
        if self.save_images:
            for t, frame in zip(outputs["frames"], to_uint8_hwc(outputs["out"]), strict=True):
                save_rgb(folder / outputs["clip"] / f"{t:08d}.png", frame)
        if batch_idx < self.log_images:
            mid = len(outputs["frames"]) // 2
            grid = side_by_side(*(to_uint8_hwc(outputs[k][mid]) for k in ("bicubic", "out", "gt")))
            self._emit(
                trainer,
                folder,
                f"{outputs['clip']}",
                f"{stage}/frames/{outputs['clip']}",
                grid,
                "bicubic | output | GT",
            )
            self._offsets(
                trainer, module, stage, folder, outputs["clip"], outputs["lq"], outputs.get("flow_pairs")
            )

    def _offsets(
        self, trainer: pl.Trainer, module: Any, stage: str, folder: Path, clip: str, lq: Any, flow_pairs: Any
    ) -> None:
        """The offsets of the first frame of the centre window (farthest from the centre) per
        alignment module: mean offset of group 0 as a colour field | diversity map."""
        net = module.evaluation_net(stage)
        modules = dict(alignment_modules(net))
        if is_recurrent(net) or not modules or self.log_offsets <= 0:
            return
        offsets = window_offsets(net, lq, module.eval_cfg["padding"], flow_pairs)
        for name, offset in list(offsets.items())[: self.log_offsets]:
            first = offset[:1].float()
            mean_yx = sampling_positions(first, modules[name].taps)[0, 0].mean(
                0
            )  # group 0: (2, h, w) as (dy, dx)
            flow = mean_yx.flip(0).permute(1, 2, 0).cpu().numpy()
            diversity = offset_diversity(first, modules[name].taps)[0].mean(0).cpu().numpy()
            grid = side_by_side(enlarge(flow_to_rgb(flow)), enlarge(heatmap_rgb(diversity)))
            longest = float(np.linalg.norm(flow, axis=-1).max())
            caption = (
                f"{clip}: mean offset (hue = direction, max {longest:.2f} px) | offset diversity "
                f"(max {float(diversity.max()):.2f} px)"
            )
            self._emit(trainer, folder, f"{clip}_offsets_{name}", f"{stage}/offsets/{name}", grid, caption)

    @staticmethod
    def _emit(
        trainer: pl.Trainer, folder: Path, stem: str, key: str, image: np.ndarray, caption: str
    ) -> None:
        save_rgb(folder / f"step{trainer.global_step:07d}_{stem}.png", image)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=trainer.global_step, caption=[caption])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")
