"""Load official checkpoints of BasicSR and MMagic (MMEditing) into vsrlab architectures.

vsrlab's architectures use BasicSR's parameter names, so a BasicSR checkpoint loads after
unwrapping; MMagic's differ in a few systematic ways that are translated here:

- BasicSR: ``{'params': sd, 'params_ema': sd}`` (EMA weights preferred), keys may carry
  ``module.`` from DataParallel.
- MMagic / MMEditing: ``{'meta': ..., 'state_dict': sd}`` with keys under ``generator.``;
  ``upsample{1,2}.upsample_conv.*`` -> ``upconv{1,2}.*``; MMCV ``ConvModule`` wraps convolutions
  one level deeper (``name.conv.weight`` -> ``name.weight``); architectures with further
  differences list them in a class attribute ``MMAGIC_KEY_RENAMES`` (pairs of regex and
  replacement, applied to keys of that module and every module containing it).
- vsrlab's own Lightning checkpoints: ``{'state_dict': ...}`` with keys under ``net.`` and, for
  runs with ``model.ema``, ``net_ema.module.``: read as BasicSR's ``params`` / ``params_ema``
  (:func:`basicsr_weights`, also what ``vsrlab-export`` writes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch.nn as nn
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vsrlab.utils.checkpoint import read_checkpoint

Rename = tuple[str, str | Callable[[re.Match], str]]

_PREFIXES = ("module.", "generator.", "net.")
GENERIC_RENAMES: list[Rename] = [(r"upsample(\d)\.upsample_conv\.", r"upconv\1.")]


class IncompatibleCheckpointError(KeyError):
    """A checkpoint whose keys or shapes do not fit the model; the message lists them."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


NET_PREFIX, EMA_PREFIX = "net.", "net_ema.module."


def is_vsrlab_checkpoint(ckpt: Any) -> bool:
    """Whether a loaded checkpoint is a vsrlab Lightning one: its ``state_dict`` keys are under ``net.``."""
    sd = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    return isinstance(sd, Mapping) and any(str(k).startswith(NET_PREFIX) for k in sd)


def basicsr_weights(ckpt: Mapping[str, Any]) -> dict[str, dict[str, Tensor]]:
    """A vsrlab Lightning checkpoint in BasicSR's layout: ``{'params': the trained network,
    'params_ema': its exponential moving average}`` (``params_ema`` only for runs with ``model.ema``)."""
    sd = ckpt["state_dict"]
    out = {"params": {k[len(NET_PREFIX) :]: v for k, v in sd.items() if k.startswith(NET_PREFIX)}}
    ema = {k[len(EMA_PREFIX) :]: v for k, v in sd.items() if k.startswith(EMA_PREFIX)}
    if ema:
        out["params_ema"] = ema
    return out


def extract_state_dict(
    ckpt: Mapping[str, Any], param_key: str | None = None, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """The parameter dictionary of a checkpoint of any supported layout, prefixes removed."""
    if is_vsrlab_checkpoint(ckpt):
        ckpt = basicsr_weights(ckpt)
    if param_key is not None:
        if param_key not in ckpt:
            raise KeyError(f"{source} has no key {param_key!r}; it has {sorted(ckpt)}")
        sd = ckpt[param_key]
    else:
        for key in ("params_ema", "params", "state_dict"):
            if key in ckpt:
                sd = ckpt[key]
                break
        else:
            if not all(isinstance(v, Tensor) for v in ckpt.values()):
                raise KeyError(
                    f"{source} has none of 'params_ema', 'params', 'state_dict' and is not a plain "
                    f"state dict; top-level keys: {sorted(ckpt)[:20]}"
                )
            sd = ckpt
    out = {}
    for key, value in sd.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _renames(model: nn.Module) -> list[Rename]:
    rules = list(GENERIC_RENAMES)
    for cls in dict.fromkeys(type(m) for m in model.modules()):
        rules.extend(getattr(cls, "MMAGIC_KEY_RENAMES", ()))
    return rules


def convert_state_dict(model: nn.Module, sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename keys of a BasicSR/MMagic state dict to ``model``'s names where they differ."""
    targets = set(model.state_dict())
    rules = [(re.compile(p), r) for p, r in _renames(model)]
    out = {}
    for key, value in sd.items():
        new = key
        if new not in targets:
            for pattern, repl in rules:
                new = pattern.sub(repl, new)
            if new not in targets:
                unwrapped = re.sub(r"\.conv\.(weight|bias)$", r".\1", new)
                if unwrapped in targets:
                    new = unwrapped
        out[new] = value
    return out


def load_pretrained(
    model: nn.Module,
    path_or_state_dict: str | Path | Mapping[str, Any],
    strict: bool = True,
    param_key: str | None = None,
) -> dict[str, list[str]]:
    """Load a BasicSR, MMagic or vsrlab checkpoint into ``model``.

    Args:
        model: the architecture, built with the argument values the checkpoint was trained with.
        path_or_state_dict: a ``.pth``/``.ckpt`` file, a loaded checkpoint or a state dict.
        strict: raise :class:`IncompatibleCheckpointError` listing missing and unexpected keys
            and shape mismatches; otherwise load the keys that fit.
        param_key: take the weights from this top-level key (default: ``params_ema``, then
            ``params``, then ``state_dict``, then the mapping itself); for a vsrlab checkpoint
            ``params`` is the trained network and ``params_ema`` its moving average.

    Returns:
        ``{'missing': [...], 'unexpected': [...], 'mismatched': [...]}`` (all empty when strict).
    """
    source = str(path_or_state_dict) if isinstance(path_or_state_dict, (str, Path)) else "checkpoint"
    ckpt = (
        read_checkpoint(Path(path_or_state_dict))
        if isinstance(path_or_state_dict, (str, Path))
        else path_or_state_dict
    )
    sd = convert_state_dict(model, extract_state_dict(ckpt, param_key, source))
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(sd) & set(own)
        if sd[k].shape != own[k].shape
    )
    if strict and (missing or unexpected or mismatched):
        parts = [f"{source} does not fit {type(model).__name__}"]
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
                parts.append(f"{len(keys)} {title}: {shown}")
        raise IncompatibleCheckpointError("; ".join(parts))
    usable = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(usable, strict=False)
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


PRETRAINED_KEYS = ("pretrained", "pretrained_strict")


def build_arch(cfg: Mapping[str, Any], load_weights: bool = True) -> nn.Module:
    """Instantiate an ``arch`` config; with ``load_weights``, load its ``pretrained`` checkpoint.

    ``pretrained`` and ``pretrained_strict`` are vsrlab keys of every arch config, not constructor
    arguments.
    """
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    net = instantiate({k: v for k, v in plain.items() if k not in PRETRAINED_KEYS})
    if load_weights:
        load_arch_weights(net, plain)
    return net


def load_arch_weights(net: nn.Module, cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """Load ``cfg['pretrained']`` (if set) into ``net``, strict unless ``cfg['pretrained_strict']`` is false.

    Returns :func:`load_pretrained`'s report (empty lists when nothing was loaded).
    """
    if not cfg.get("pretrained"):
        return {"missing": [], "unexpected": [], "mismatched": []}
    strict = cfg.get("pretrained_strict")
    return load_pretrained(net, cfg["pretrained"], strict=True if strict is None else bool(strict))
