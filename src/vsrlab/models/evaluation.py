"""What :class:`~vsrlab.models.VSRModule` does with a trained network: the network evaluated (the
weight average or the weights), whole clips predicted (:mod:`vsrlab.inference.clip`) and streamed
(:meth:`ClipEvaluation.super_resolve`), validation and test steps that score each clip
(:class:`~vsrlab.metrics.clip_scores.ClipScores`) and hand the picture callback what it draws."""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import returns_levels, upscale
from vsrlab.inference import clip as clip_inference
from vsrlab.inference.stream import super_resolve_stream
from vsrlab.losses.levels import level_psnr, level_targets
from vsrlab.metrics.clip_scores import ClipScores
from vsrlab.models.flow_source import batch_flows, corrupt_flows
from vsrlab.ops.resize import matlab_imresize_tensor
from vsrlab.ops.windows import window_indices
from vsrlab.utils.images import to_uint8_hwc

VAL_HISTORY_KEYS = ("psnr", "ssim", "psnr_bicubic")


class ClipEvaluation:
    """The evaluation half of :class:`~vsrlab.models.VSRModule` (a mixin of it: it uses the module's
    ``net``, ``net_ema``, ``ema``, ``eval_cfg``, ``protocol``, ``flow_source``, ``flow_error``,
    ``clip_motion`` and its score and history attributes)."""

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
        given = pairs
        if pairs is not None and self.flow_error:
            identity = torch.eye(pairs.shape[0], dtype=torch.bool, device=pairs.device)
            given = corrupt_flows(pairs, self.flow_error, int(batch["clip_index"][0]), identity)
        out = self.predict_clip(lq, frames, mirror=self.protocol["mirror"], stage=stage, flow_pairs=given)
        bicubic = matlab_imresize_tensor(lq[frames], scale)
        fingerprint = json.loads(batch["fingerprint"][0]) if "fingerprint" in batch else None
        use_motion = scores.motion is not None and self.clip_motion is not None
        motion = self.clip_motion(batch, lq, frames) if use_motion else None
        scores.update(int(batch["clip_index"][0]), name, frames, out, bicubic, gt, fingerprint, motion)
        if returns_levels(self.net) and stage == "val":
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
        # the loggers' x-axis: optimizer steps done (Lightning's own lags by one inside the training loop)
        self.log("step", float(self.global_step))
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
