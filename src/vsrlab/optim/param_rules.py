"""Per-module learning rates and freezing (BasicSR's ``flow_lr_mul``, ``fix_flow``, EDVR's ``tsa_iter``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn as nn


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(p == "*" or name == p or name.startswith(p + ".") for p in prefixes)


class ParamRules:
    """Which parameters of ``net`` train at which learning rate, and which are held fixed when.

    Args:
        net: the network.
        lr_mult: ``{module prefix: factor}``, e.g. ``{spynet: 0.125}`` (BasicVSR's flow learning rate).
        freeze: ``[{modules: [prefix, ...] or ['*'], exclude: [prefix, ...], until_step: n}]``: those
            parameters get no updates before step ``n`` (BasicVSR's frozen SPyNet; EDVR's
            ``tsa_iter``: ``{modules: ['*'], exclude: [fusion]}``).

    Raises:
        KeyError: a prefix names no parameter (listing the top-level modules), or a freeze rule
            lacks ``modules`` or ``until_step``.
    """

    def __init__(
        self,
        net: nn.Module,
        lr_mult: Mapping[str, float] | None = None,
        freeze: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.net, self.lr_mult, self.freeze = net, dict(lr_mult or {}), [dict(r) for r in freeze or ()]
        names = [n for n, _ in net.named_parameters()]
        prefixes = list(self.lr_mult)
        for rule in self.freeze:
            if "until_step" not in rule or "modules" not in rule:
                raise KeyError(f"model.freeze entries need 'modules' and 'until_step', got {rule}")
            prefixes += [p for p in rule["modules"] if p != "*"] + list(rule.get("exclude", []))
        for prefix in prefixes:
            if not any(n == prefix or n.startswith(prefix + ".") for n in names):
                raise KeyError(
                    f"no parameters of {type(net).__name__} under {prefix!r} (model.lr_mult / model.freeze); "
                    f"top-level modules: {sorted({n.split('.')[0] for n in names})}"
                )

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Trainable parameters grouped by ``lr_mult`` (one group per distinct multiplier)."""
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                mult = next((m for prefix, m in self.lr_mult.items() if _under(name, [prefix])), 1.0)
                groups.setdefault(float(mult), []).append(p)
        return [{"params": ps, "lr": base_lr * m} for m, ps in sorted(groups.items(), reverse=True)]

    def frozen(self, step: int) -> list[nn.Parameter]:
        """Parameters held fixed at ``step``."""
        frozen = []
        for rule in self.freeze:
            if step < int(rule["until_step"]):
                frozen += [
                    p
                    for n, p in self.net.named_parameters()
                    if _under(n, rule["modules"]) and not _under(n, list(rule.get("exclude", [])))
                ]
        return frozen
