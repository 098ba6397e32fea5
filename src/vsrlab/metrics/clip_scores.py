"""The scores of one evaluation: PSNR, SSIM and the bicubic baseline per clip, the clips' names and
data fingerprints, gathered from every DDP process; the literature's protocol (per-clip mean, then
mean over clips; uint8 outputs); optionally the scores per motion bin (:mod:`vsrlab.metrics.motion`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from vsrlab.data.fingerprint import alignment_problem, data_report
from vsrlab.metrics.motion import MotionBinScores
from vsrlab.metrics.video import VideoPSNR, VideoSSIM

log = logging.getLogger(__name__)

PROTOCOL_DEFAULTS = {"test_y_channel": False, "crop_border": 0, "frames": "all", "mirror": False}


def check_protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    """An evaluation protocol (``data.protocol``) with its defaults: ``test_y_channel`` and
    ``crop_border`` of the scores, ``frames`` (``all``, or ``center``: only each clip's middle frame is
    predicted and scored, Vimeo-90K-T) and ``mirror`` (recurrent networks see the clip and its time
    reversal, MMagic's Vimeo-90K-T convention).

    Raises:
        ValueError: an unknown key or ``frames`` value (naming it).
    """
    unknown = sorted(set(protocol) - set(PROTOCOL_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown evaluation protocol keys {unknown} (data.protocol); known: {list(PROTOCOL_DEFAULTS)}"
        )
    protocol = {**PROTOCOL_DEFAULTS, **protocol}
    if protocol["frames"] not in ("all", "center"):
        raise ValueError(f"data.protocol.frames must be 'all' or 'center', got {protocol['frames']!r}")
    return protocol


class ClipScores(nn.Module):
    """Accumulates the clips of one validation or test pass.

    Args:
        test_y_channel, crop_border: the protocol of the scores (:class:`VideoPSNR`, :class:`VideoSSIM`).
        motion_edges: bin edges of the scores per motion bin (:class:`MotionBinScores`); None: none.
    """

    def __init__(
        self, test_y_channel: bool = False, crop_border: int = 0, motion_edges: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        args = {"test_y_channel": test_y_channel, "crop_border": crop_border}
        self.metrics = nn.ModuleDict({"psnr": VideoPSNR(**args), "ssim": VideoSSIM(**args),
                                      "psnr_bicubic": VideoPSNR(**args)})  # fmt: skip
        self.motion = None if motion_edges is None else MotionBinScores(tuple(motion_edges), **args)
        self.names: dict[int, str] = {}
        self.fingerprints: dict[str, dict[str, Any]] = {}
        self.skipped = 0
        self._reported: set[str] = set()

    def update(self, clip: int, name: str, frames: list[int], out: Tensor, bicubic: Tensor, gt: Tensor,
               fingerprint: dict[str, Any] | None = None,
               motion: tuple[Tensor, str] | None = None) -> None:  # fmt: skip
        """Score the ``frames`` of clip ``clip`` (index) / ``name``: outputs and bicubic ``(n, C, H, W)``
        against GT; keep its data fingerprint, warning once per clip when its LR frames do not belong
        to its GT (shifted, another degradation); with motion bins, ``motion`` is the frames' motion
        ``(n, h, w)`` and its flow source (:class:`vsrlab.metrics.motion.ClipMotion`)."""
        self.names[clip] = name
        ids = (torch.full((len(frames),), clip, dtype=torch.long), torch.tensor(frames))
        for key, pred in (("psnr", out), ("ssim", out), ("psnr_bicubic", bicubic)):
            self.metrics[key].update(pred, gt, *ids)
        if self.motion is not None:
            if motion is None:
                raise ValueError(f"clip {name}: scores per motion bin need the motion of its frames")
            self.motion.update(clip, name, frames, out, bicubic, gt, *motion)
        if fingerprint is not None:
            self.fingerprints[name] = fingerprint
            check = fingerprint.get("lr_check")
            problem = alignment_problem(name, check, fingerprint.get("degradation")) if check else None
            if problem and name not in self._reported:
                self._reported.add(name)
                log.warning(problem)

    def compute(self) -> dict[str, Tensor]:
        """Mean PSNR, SSIM, bicubic PSNR and the gain over bicubic (synchronised across processes)."""
        values = {name: metric.compute() for name, metric in self.metrics.items()}
        values["psnr_gain"] = values["psnr"] - values["psnr_bicubic"]
        return values

    def results(self) -> dict[str, Any]:
        """``{'clips': {name: {psnr, ssim, psnr_bicubic, frames}}, 'mean', 'skipped_clips', 'data'}``,
        gathered from every process under DDP (``data``: :func:`vsrlab.data.fingerprint.data_report`),
        and ``motion_bins`` (:meth:`MotionBinScores.results`) when they are scored."""
        per_metric = {}
        for name, metric in self.metrics.items():
            with metric.sync_context():
                per_metric[name] = metric.per_clip()
        names, fingerprints = dict(self.names), dict(self.fingerprints)
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
        data = data_report(fingerprints)
        for problem in data.get("problems", []):
            rank_zero_warn(f"evaluation data: {problem}")
        mean = {name: float(metric.compute()) for name, metric in self.metrics.items()}
        results = {"clips": clips, "mean": mean, "skipped_clips": self.skipped, "data": data}
        if self.motion is not None:
            results["motion_bins"] = self.motion.results()
        return results

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self.names, self.fingerprints, self.skipped = {}, {}, 0
        if self.motion is not None:
            self.motion.reset()
