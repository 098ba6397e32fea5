"""The one model loader of every app and of notebooks.

:func:`load_model` builds the model an app's config names: ``ckpt_path`` a vsrlab Lightning checkpoint
(its architecture and training options; the app's protocol, evaluation and speed options), any other
weights file (BasicSR / MMagic / exported ``.pth``: loaded into ``cfg.model.arch`` as ``arch.pretrained``),
or none (``cfg.model`` with its own ``arch.pretrained``). :func:`load` is the Python API over it::

    net = vsrlab.load("logs/train/runs/my_run")            # a run directory, a .ckpt, or
    net = vsrlab.load("edvr_m.pth", arch="edvr")           # weights with the arch config to build
    out = net.super_resolve(frames)                        # (T, H, W, 3) uint8 or (T, C, h, w) float
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vsrlab.archs.pretrained import is_vsrlab_checkpoint
from vsrlab.models import VSRModule
from vsrlab.models.vsr_module import SPEED_OPTIONS
from vsrlab.run.checkpoints import run_checkpoint
from vsrlab.utils.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

#: the options of a checkpoint's model that the loading app's config replaces
APP_OPTIONS = ("protocol", "evaluation", *SPEED_OPTIONS)


def module_from_checkpoint(path: str | Path, overrides: Mapping[str, Any] | None = None) -> VSRModule:
    """The :class:`VSRModule` of the vsrlab checkpoint ``path`` with the keys of ``overrides`` among
    :data:`APP_OPTIONS` replaced (and its ``ema`` options updated by ``overrides['ema']``).

    Raises:
        FileNotFoundError, CheckpointError: the file is missing, unreadable or not a vsrlab checkpoint.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "arch" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path} is not a vsrlab training checkpoint (no hyper_parameters.arch); official "
            f"weights load with arch=<name> arch.pretrained={path}"
        )
    overrides = dict(overrides or {})
    ema = hparams.get("ema")
    if ema and overrides.get("ema"):  # e.g. model.ema.test=false: score the trained weights
        ema = {**ema, **overrides["ema"]}
    current = {k: overrides[k] for k in APP_OPTIONS if k in overrides}
    model = VSRModule(**{**hparams, **current, "ema": ema})
    model.on_load_checkpoint(ckpt)
    model.load_state_dict(ckpt["state_dict"])
    return model


def load_model(cfg: DictConfig) -> VSRModule:
    """The model of an app's config, in eval mode: ``cfg.ckpt_path`` (a vsrlab checkpoint, or other
    weights loaded into ``cfg.model.arch``) or ``cfg.model`` with its ``arch.pretrained``.

    Raises:
        FileNotFoundError, CheckpointError: the checkpoint is missing or unreadable; the message names it.
    """
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if is_vsrlab_checkpoint(read_checkpoint(path, mmap=True)):  # a peek; FileNotFoundError names it
            log.info("loading %s (its architecture config overrides arch=...)", path)
            return module_from_checkpoint(path, model_cfg).eval()
        if model_cfg["arch"].get("pretrained"):
            log.warning("ckpt_path=%s replaces arch.pretrained=%s", path, model_cfg["arch"]["pretrained"])
        log.info("%s is not a vsrlab Lightning checkpoint: loading it into arch %s", path,
                 model_cfg["arch"]["_target_"])  # fmt: skip
        model_cfg["arch"]["pretrained"] = str(path)
    model = instantiate(model_cfg)
    model.load_pretrained()
    return model.eval()


def _compose_model(arch: str | Mapping[str, Any], overrides: Sequence[str]) -> DictConfig:
    """``model`` of ``conf/eval.yaml`` composed with ``arch`` (a config of ``conf/arch`` or a dict)."""
    from hydra import compose, initialize_config_dir

    from vsrlab.engine.resolvers import register_resolvers
    from vsrlab.engine.setup import CONFIG_DIR

    register_resolvers()
    named = [f"arch={arch}"] if isinstance(arch, str) else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=[*named, *overrides])
    if not isinstance(arch, str):
        cfg.model.arch = OmegaConf.create(dict(arch))
    return cfg


def load(
    source: str | Path,
    arch: str | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    overrides: Sequence[str] = (),
) -> VSRModule:
    """A ready model, in eval mode on ``device``: the :class:`VSRModule` of a run directory (its best
    checkpoint, else ``last.ckpt``), of a vsrlab ``.ckpt``, or of a weights file (an exported ``.pth``,
    BasicSR / MMagic weights) loaded into the network of ``arch`` (a name of ``conf/arch``, e.g.
    ``"edvr"``, or an arch config dict). Its network evaluates with the weight average when the run kept
    one (``model.evaluation_net()``); ``model.hparams`` is its config. ``overrides``: Hydra overrides of
    ``conf/eval.yaml`` for a weights file (e.g. ``["arch.num_feat=64"]``).

    Raises:
        FileNotFoundError: ``source`` does not exist; ValueError: a weights file without ``arch``.
    """
    from vsrlab.engine.device import resolve_device

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no run directory, checkpoint or weights file there")
    if path.is_dir():
        path = run_checkpoint(path)
    if is_vsrlab_checkpoint(read_checkpoint(path, mmap=True)):
        model = module_from_checkpoint(path)
    else:
        if arch is None:
            raise ValueError(f"{path} holds weights without their architecture: give arch= (e.g. 'edvr')")
        cfg = _compose_model(arch, overrides)
        cfg.ckpt_path = str(path)
        model = load_model(cfg)
    return model.eval().to(resolve_device(str(device)))
