"""Pictures of an evaluation: for the first clips, the centre frame as bicubic | output | GT with their
PSNRs (the run's protocol) and, for sliding-window networks, each alignment module's offsets (mean
offset colour-coded with a colour wheel | pixelwise offset diversity with a colour bar); optionally every
scored output frame. Saved as labelled PNGs (:func:`vsrlab.utils.figures.panel_figure`) under
``<run dir>/images/<stage>/`` and logged to W&B and TensorBoard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

from vsrlab.archs.contract import is_recurrent
from vsrlab.inference.clip import window_offsets
from vsrlab.metrics import calculate_psnr
from vsrlab.ops import alignment_modules, offset_diversity, sampling_positions
from vsrlab.utils.figures import Panel, panel_figure
from vsrlab.utils.images import save_rgb, to_uint8_hwc


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
            bicubic, out, gt = (to_uint8_hwc(outputs[k][mid]) for k in ("bicubic", "out", "gt"))
            scored = {k: module.protocol[k] for k in ("test_y_channel", "crop_border")}
            panels = [
                Panel(bicubic, f"bicubic\n{calculate_psnr(bicubic, gt, **scored):.2f} dB"),
                Panel(out, f"output\n{calculate_psnr(out, gt, **scored):.2f} dB"),
                Panel(gt, "GT\n "),
            ]
            channel = "Y" if scored["test_y_channel"] else "RGB"
            clip, frame = outputs["clip"], outputs["frames"][mid]
            title = f"{clip}, frame {frame}, step {trainer.global_step} (PSNR: {channel})"
            self._emit(trainer, folder, outputs["clip"], f"{stage}/frames/{outputs['clip']}", [panels], title)
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
            mean_yx = sampling_positions(first, modules[name].taps)[0, 0].mean(0)  # group 0: (dy, dx)
            flow = mean_yx.flip(0).permute(1, 2, 0).cpu().numpy()
            diversity = offset_diversity(first, modules[name].taps)[0].mean(0).cpu().numpy()
            longest = float(np.linalg.norm(flow, axis=-1).max())
            panels = [
                Panel(flow, f"mean offset, group 0\n(longest {longest:.2f} px)", "flow"),
                Panel(diversity, "offset diversity\n(mean over groups)", "heatmap", label="diversity (px)"),
            ]
            title = f"{clip}: {name}, window frame 0 -> centre, step {trainer.global_step}"
            self._emit(trainer, folder, f"{clip}_offsets_{name}", f"{stage}/offsets/{name}", [panels], title)

    @staticmethod
    def _emit(
        trainer: pl.Trainer, folder: Path, stem: str, key: str, rows: list[list[Panel]], title: str
    ) -> None:
        image = panel_figure(rows, title, folder / f"step{trainer.global_step:07d}_{stem}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[image], step=trainer.global_step, caption=[title])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")
