"""torchmetrics for video SR: per-frame scores, mean per clip, then mean over clips.

The per-frame scores are :func:`vsrlab.metrics.calculate_psnr` / ``calculate_ssim`` of the
uint8-rounded frames, so training-time validation and offline evaluation report the same
numbers. States are concatenated across processes (``dist_reduce_fx="cat"``) and frames seen
twice (a distributed sampler pads its last batch by repeating samples) count once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from vsrlab.metrics.image import calculate_psnr, calculate_ssim
from vsrlab.utils.images import to_uint8_hwc


class ClipAveragedMetric(Metric):
    """Mean over clips of the mean over each clip's frames of ``score_fn``.

    ``update(preds, target, clip_index, frame_index)`` with ``preds``/``target`` ``(N, C, H, W)``
    floats in [0, 1] and integer ``(N,)`` clip and frame indices.
    """

    score_fn: ClassVar[Callable[..., float]]
    full_state_update = False
    higher_is_better = True

    def __init__(self, crop_border: int = 0, test_y_channel: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crop_border = crop_border
        self.test_y_channel = test_y_channel
        self.add_state("clip", default=[], dist_reduce_fx="cat")
        self.add_state("frame", default=[], dist_reduce_fx="cat")
        self.add_state("value", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, clip_index: Tensor, frame_index: Tensor) -> None:
        if preds.shape != target.shape or preds.dim() != 4:
            raise ValueError(
                f"preds and target must both be (N, C, H, W); got {tuple(preds.shape)} "
                f"and {tuple(target.shape)}"
            )
        fn = type(self).score_fn
        pred_img, gt_img = to_uint8_hwc(preds), to_uint8_hwc(target)
        scores = [
            fn(p, g, self.crop_border, self.test_y_channel) for p, g in zip(pred_img, gt_img, strict=True)
        ]
        self.value.append(torch.tensor(scores, dtype=torch.float64, device=self.device))
        self.clip.append(torch.as_tensor(clip_index, device=self.device).long().reshape(-1))
        self.frame.append(torch.as_tensor(frame_index, device=self.device).long().reshape(-1))

    def per_clip(self) -> dict[int, tuple[float, int]]:
        """``{clip_index: (mean score, number of frames)}`` over the (synchronised) state.

        After synchronisation across processes the list states are single concatenated tensors.
        """
        if isinstance(self.value, list) and not self.value:
            return {}
        clips, frames, values = (dim_zero_cat(s).cpu() for s in (self.clip, self.frame, self.value))
        unique: dict[tuple[int, int], float] = {}
        for c, f, v in zip(clips.tolist(), frames.tolist(), values.tolist(), strict=True):
            unique[(c, f)] = v
        grouped: dict[int, list[float]] = defaultdict(list)
        for (c, _), v in unique.items():
            grouped[c].append(v)
        return {c: (float(np.mean(v)), len(v)) for c, v in sorted(grouped.items())}

    def compute(self) -> Tensor:
        clips = self.per_clip()
        if not clips:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return torch.tensor(float(np.mean([m for m, _ in clips.values()])), dtype=torch.float64)


class VideoPSNR(ClipAveragedMetric):
    """PSNR in dB (:func:`vsrlab.metrics.calculate_psnr`), clip-averaged."""

    score_fn = staticmethod(calculate_psnr)


class VideoSSIM(ClipAveragedMetric):
    """SSIM (:func:`vsrlab.metrics.calculate_ssim`), clip-averaged."""

    score_fn = staticmethod(calculate_ssim)
