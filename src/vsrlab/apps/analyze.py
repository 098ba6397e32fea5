"""``vsrlab-analyze``'s app: load the network (a vsrlab checkpoint or an arch config with official
weights), the clip, run one tool (``tool.name``: ``lam``, ``offsets``, ``semantics``), write its pictures and
numbers into the run directory and log them to W&B."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from vsrlab.analysis.inputs import default_window, load_clip, network_view, tool_options
from vsrlab.analysis.lam import local_attribution_map, share_by_distance
from vsrlab.analysis.lam_figures import save_lam_pictures
from vsrlab.archs.contract import is_recurrent
from vsrlab.archs.spynet_arch import flow_from_frame, frozen_spynet
from vsrlab.engine import finish_wandb, instantiate_loggers, load_model, resolve_device
from vsrlab.run import write_json
from vsrlab.utils.images import to_uint8_hwc

log = logging.getLogger(__name__)

LAM_OPTIONS = ("window_size", "sigma", "fold", "kernel_size", "detector", "steps_per_batch")


def run_lam(net: nn.Module, clip: dict[str, Any], tool: DictConfig, out_dir: Path) -> dict[str, Any]:
    """LAM of one output window of one frame (:func:`vsrlab.analysis.lam.local_attribution_map`): writes
    ``lam.png`` (``lam_frames.png`` for video), ``lam.json`` and the map as ``lam_map.npy``."""
    lq, index = network_view(net, clip["lq"], tool.get("frame"))
    options = tool_options(tool, LAM_OPTIONS)
    window = int(options.get("window_size", 16))
    row, col = tool.get("row"), tool.get("col")
    if row is None or col is None:
        with torch.no_grad():
            out = net(lq.to(next(net.parameters()).device))
        centre = default_window(tuple(out.shape[-2:]), window)
        row, col = centre[0] if row is None else row, centre[1] if col is None else col
    # vsrlab's networks all take (1, T, C, h, w): a window (of one frame for bicubic) or the clip
    frame = index if is_recurrent(net) else None
    result = local_attribution_map(net, lq, int(row), int(col), frame=frame, progress=True, **options)
    np.save(out_dir / "lam_map.npy", result.attribution_map.numpy())
    figures = save_lam_pictures(result, to_uint8_hwc(lq[0]), out_dir, float(tool.get("alpha", 0.5)))
    numbers = {
        "clip": clip["name"],
        "row": result.row,
        "col": result.col,
        "window_size": result.window_size,
        "output_frame": index,
        "input_frames": lq.shape[1],
        "diffusion_index": result.diffusion_index,
        "gini": result.gini,
        "frame_shares": result.frame_shares.tolist(),
        "share_by_distance": {str(k): v for k, v in share_by_distance(result.frame_shares, index).items()},
        **{k: v for k, v in options.items() if k != "window_size"},
        "figures": [str(p) for p in figures],
    }
    write_json(out_dir / "lam.json", numbers)
    log.info("LAM of %s at (%d, %d): DI %.3f, frame shares %s", clip["name"], row, col,
             result.diffusion_index, np.round(result.frame_shares.numpy(), 3).tolist())  # fmt: skip
    return numbers


def run_offsets_tool(net: nn.Module, clip: dict[str, Any], tool: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Offsets versus flow (:func:`vsrlab.analysis.offsets.run_offsets`); with ``tool.spynet_path`` and no
    true flow in the data, SPyNet's flow from the centre frame is the reference."""
    from vsrlab.analysis.offsets import run_offsets

    if "flow" not in clip and tool.get("spynet_path"):
        clip = {**clip, "flow": spynet_flows(clip["lq"], tool.spynet_path)}
    options = tool_options(tool, ("frame", "modules", "max_offsets_drawn"))
    return run_offsets(net, clip, out_dir, **options)


def spynet_flows(lq: torch.Tensor, weights: str) -> torch.Tensor:
    """SPyNet's flow ``(L, 2, h, w)`` from the clip's centre frame ``(L, 3, h, w)`` to every frame (the
    convention of the synthetic data's true flow)."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"tool.spynet_path: no SPyNet weights at {weights}")
    return flow_from_frame(frozen_spynet(weights), lq[None], lq.shape[0] // 2)[0]


def run_semantics_tool(net: nn.Module, cfg: DictConfig, tool: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Degradation semantics (:func:`vsrlab.analysis.semantics.run_semantics`) on the GT of the first
    ``tool.num_clips`` clips of the test split."""
    from hydra.utils import instantiate

    from vsrlab.analysis.semantics import run_semantics

    dataset = instantiate(cfg.data).test_set
    count = min(int(tool.get("num_clips", 6)), len(dataset))
    clips = []
    for i in range(count):
        sample = dataset[i]
        clips.append((str(sample.get("key", f"clip{i}")), to_uint8_hwc(sample["gt"])))
    options = tool_options(tool, ("layer", "pooling", "method", "seed"))
    if tool.get("degradations") is not None:
        options["degradations"] = OmegaConf.to_container(tool.degradations, resolve=True)
    return run_semantics(net, clips, out_dir, scale=int(cfg.data.get("scale") or _scale(dataset)), **options)


def _scale(dataset: Any) -> int:
    scale = getattr(dataset, "scale", None)
    if scale is None:
        raise ValueError("data.scale is not set and the test split does not say its scale")
    return int(scale)


CLIP_TOOLS: dict[str, Callable[[nn.Module, dict[str, Any], DictConfig, Path], dict[str, Any]]] = {
    "lam": run_lam,
    "offsets": run_offsets_tool,
}
TOOLS = (*CLIP_TOOLS, "semantics")


def analyze(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.tool`` on the network of ``cfg.ckpt_path`` (or ``cfg.arch`` with ``arch.pretrained``) and
    return its numbers; pictures and JSON go to ``cfg.paths.output_dir`` and to W&B."""
    tool = cfg.tool
    if tool.get("name") not in TOOLS:
        raise ValueError(f"tool.name must be one of {list(TOOLS)}, got {tool.get('name')!r}")
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loggers = instantiate_loggers(cfg) if cfg.get("logger") else []
    try:
        net = load_model(cfg).evaluation_net("test").eval().to(resolve_device(cfg.get("device", "auto")))
        for p in net.parameters():
            p.requires_grad_(False)
        if tool.name == "semantics":
            numbers = run_semantics_tool(net, cfg, tool, out_dir)
        else:
            numbers = CLIP_TOOLS[tool.name](net, load_clip(cfg), tool, out_dir)
        log_to_wandb(loggers, tool.name, numbers)
        log.info("%s: results in %s", tool.name, out_dir)
        return numbers
    finally:
        finish_wandb()


def log_to_wandb(loggers: list[Any], tool: str, numbers: dict[str, Any]) -> None:
    """Every figure as a W&B image (key ``analyze/<tool>/<file stem>``) and the scalar numbers in the
    run's summary."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        import wandb

        images = {f"analyze/{tool}/{Path(p).stem}": wandb.Image(str(p)) for p in numbers.get("figures", [])}
        logger.experiment.log(images)
        for key, value in numbers.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                logger.experiment.summary[f"analyze/{tool}/{key}"] = value
