"""A per-process cache of constant tensors (resize matrices, attention masks) that tracing bypasses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def tensor_cache(maxsize: int) -> Callable[[F], F]:
    """``functools.lru_cache(maxsize)``, except while ``torch.export`` / ``torch.compile`` trace: a
    tensor built then is a fake tensor of the trace, which the cache would hand to every later eager
    call (an ONNX export followed by PyTorch's reference output failed that way)."""

    def wrap(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            if torch.compiler.is_compiling() or torch.compiler.is_exporting():
                return fn(*args)
            return cached(*args)

        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return wrap
