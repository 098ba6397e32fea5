"""Options that change how fast a network trains and how much memory it takes, not what it computes.

- ``compile``: ``torch.compile`` of the network in place (``nn.Module.compile``), so its state-dict
  keys stay plain (no ``_orig_mod.``) and checkpoints load into an uncompiled network.
- ``channels_last``: 4-D parameters (convolution weights) in channels-last memory format; the
  convolutions then produce channels-last activations (faster with tensor cores on GPUs).
- ``checkpointing``: activation checkpointing (``torch.utils.checkpoint``, non-reentrant) while
  training: modules that carry their own switch (``use_checkpoint``: the Swin groups of the VSR
  Transformer and PSRT-recurrent) are switched on; otherwise the modules an architecture names in
  ``checkpoint_modules`` (the per-frame trunks of the recurrent networks), or those matching a list
  of ``fnmatch`` patterns of qualified module names, recompute their activations in the backward
  pass instead of keeping them.

Each is tested for equal outputs and gradients (``tests/test_speed_options.py``);
``python -m scripts.bench.models`` measures what they gain.
"""

from __future__ import annotations

import fnmatch
import types
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from vsrlab.archs.contract import checkpoint_modules

CheckpointingOption = bool | Sequence[str] | None


def _checkpointed_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    forward = type(self).forward
    if self.training and torch.is_grad_enabled():
        return checkpoint(forward, self, *args, use_reentrant=False, **kwargs)
    return forward(self, *args, **kwargs)


def checkpoint_module(module: nn.Module) -> None:
    """Recompute ``module``'s activations in the backward pass (while training with gradients on).

    The forward is replaced on the instance by a bound method, so copies (``deepcopy``: the weight
    average) stay bound to themselves and the state dict is unchanged.
    """
    module.forward = types.MethodType(_checkpointed_forward, module)


def is_checkpointed(module: nn.Module) -> bool:
    forward = module.__dict__.get("forward")
    return isinstance(forward, types.MethodType) and forward.__func__ is _checkpointed_forward


def own_switches(net: nn.Module) -> list[nn.Module]:
    """The submodules with their own activation-checkpointing switch (a bool ``use_checkpoint``)."""
    return [m for m in net.modules() if isinstance(getattr(m, "use_checkpoint", None), bool)]


def enable_checkpointing(net: nn.Module, patterns: CheckpointingOption = True) -> list[str]:
    """Turn on activation checkpointing in ``net``; returns what was checkpointed (module names).

    Args:
        patterns: ``True``: the modules with their own switch, else ``net.checkpoint_modules``;
            a list of ``fnmatch`` patterns of qualified module names (``backbone.*``);
            ``False`` / ``None``: nothing.

    Raises:
        ValueError: ``True`` for a network with neither a switch nor ``checkpoint_modules``, or
            patterns that match no module (the message names them and the network).
    """
    if not patterns:
        return []
    name = type(net).__name__
    if patterns is True:
        switches = own_switches(net)
        if switches:
            for m in switches:
                m.use_checkpoint = True
            return [n for n, m in net.named_modules() if n and m in switches]  # a root switch sets them
        patterns = checkpoint_modules(net)
        if not patterns:
            raise ValueError(
                f"model.checkpointing=true: {name} names no checkpoint_modules; give module patterns, "
                f"e.g. model.checkpointing=[reconstruction]"
            )
    if isinstance(patterns, str):
        patterns = [patterns]
    named = [(n, m) for n, m in net.named_modules() if n]
    chosen = [(n, m) for n, m in named if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n, _ in named)]
    if unmatched:
        raise ValueError(f"model.checkpointing: {unmatched} match no module of {name}")
    names = [n for n, _ in chosen]
    outermost = [(n, m) for n, m in chosen if not any(n.startswith(a + ".") for a in names)]
    for _, m in outermost:
        checkpoint_module(m)
    return [n for n, _ in outermost]


def apply_speed_options(
    net: nn.Module,
    compile: bool | dict[str, Any] | None = None,
    channels_last: bool = False,
    checkpointing: CheckpointingOption = None,
) -> nn.Module:
    """Apply the options (see the module docstring) to ``net`` in place and return it.

    ``compile``: ``True`` or the keyword arguments of ``torch.compile`` (``backend``, ``mode``,
    ``dynamic``, ``fullgraph``, ``options``).
    """
    enable_checkpointing(net, checkpointing)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if compile:
        net.compile(**({} if compile is True else dict(compile)))
    return net
