"""Windows of multi-frame self-attention: the functional pieces of 3-D (video) Swin attention.

Tokens are ``(B, D, H, W, C)`` — frames, rows, columns, channels — and an attention window is
``(d, h, w)`` tokens, ordered ``(t, y, x)`` inside the window (Liu et al., "Swin Transformer",
ICCV 2021, Sec. 3.2, extended to time as in Video Swin and in PSRT's multi-frame self-attention
block, Shi et al. NeurIPS 2022, Sec. 5). Shifted windows roll the tokens by ``shift`` before
partitioning; the mask then keeps tokens that were neighbours only through the roll from
attending to each other (-100 added to their logits, 0 elsewhere, as the references do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vsrlab.ops.tensor_cache import tensor_cache

Window = tuple[int, int, int]
MASKED = -100.0


def pad_to_windows(x: Tensor, window: Window) -> tuple[Tensor, tuple[int, int, int]]:
    """Zero-pad ``x`` ``(B, D, H, W, C)`` at the end of each axis to a multiple of ``window``.

    Returns:
        The padded tensor ``(B, D', H', W', C)`` and the original ``(D, H, W)`` to crop back to.
    """
    d, h, w = x.shape[1:4]
    pads = [-size % win for size, win in zip((d, h, w), window, strict=True)]
    if any(pads):
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    return x, (d, h, w)


def partition_windows(x: Tensor, window: Window) -> Tensor:
    """``(B, D, H, W, C)`` with every size a multiple of ``window`` -> ``(B * nW, d*h*w, C)``.

    Windows are ordered batch-major, then along D, H and W.
    """
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    if d % wd or h % wh or w % ww:
        raise ValueError(f"tokens {(d, h, w)} are not a multiple of the window {window}: pad them first")
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def merge_windows(windows: Tensor, window: Window, size: tuple[int, int, int, int]) -> Tensor:
    """Inverse of :func:`partition_windows`: ``(B * nW, d*h*w, C)`` -> ``(B, D, H, W, C)``.

    Args:
        size: ``(B, D, H, W)`` of the partitioned tensor.
    """
    b, d, h, w = size
    wd, wh, ww = window
    x = windows.view(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def relative_position_index(window: Window) -> Tensor:
    """Index into a ``((2d-1)(2h-1)(2w-1), heads)`` bias table for every token pair of a window.

    Entry ``[i, j]`` encodes the offset ``(t_i - t_j, y_i - y_j, x_i - x_j)`` shifted to be
    non-negative, in row-major order over ``(2d-1, 2h-1, 2w-1)``.

    Returns:
        ``(N, N)`` long tensor, ``N = d*h*w``.
    """
    coords = torch.stack(torch.meshgrid(*(torch.arange(n) for n in window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]  # (3, N, N)
    spans = [2 * n - 1 for n in window]
    rel = rel + torch.tensor([n - 1 for n in window]).view(3, 1, 1)
    return rel[0] * spans[1] * spans[2] + rel[1] * spans[2] + rel[2]


def _region_labels(size: int, window: int, shift: int) -> Tensor:
    """Per position along one axis, which of the (up to three) roll regions it belongs to."""
    pos = torch.arange(size)
    labels = torch.zeros(size, dtype=torch.long)
    if shift > 0:
        labels[pos >= size - window] = 1
        labels[pos >= size - shift] = 2
    return labels


@tensor_cache(32)
def _shifted_window_mask(size: tuple[int, int, int], window: Window, shift: Window, device: str) -> Tensor:
    with torch.inference_mode(False):  # cached: a normal tensor even when first built in an evaluation
        return _build_shifted_window_mask(size, window, shift, device)


def _build_shifted_window_mask(
    size: tuple[int, int, int], window: Window, shift: Window, device: str
) -> Tensor:
    d, h, w = (-(-n // win) * win for n, win in zip(size, window, strict=True))
    ld, lh, lw = (_region_labels(n, win, s) for n, win, s in zip((d, h, w), window, shift, strict=True))
    labels = (ld.view(-1, 1, 1) * 9 + lh.view(1, -1, 1) * 3 + lw.view(1, 1, -1)).to(torch.float32)
    windows = partition_windows(labels.view(1, d, h, w, 1), window).squeeze(-1)  # (nW, N)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, MASKED, 0.0).to(device)


def shifted_window_mask(
    size: tuple[int, int, int], window: Window, shift: Window, device: torch.device | str = "cpu"
) -> Tensor:
    """Attention mask of shifted windows over tokens of ``size`` ``(D, H, W)``.

    ``size`` is padded up to window multiples as :func:`pad_to_windows` does. Along an axis
    rolled by ``shift > 0`` the positions fall in three regions (before the last window, the
    last window before the shift, the rolled-in tail); tokens of one window attend to each other
    only within the same region of every axis.

    Returns:
        ``(nW, N, N)`` float32 with 0 (attend) and -100 (masked), ``N = d*h*w``. Cached per
        size, window, shift and device: treat it as read-only.
    """
    return _shifted_window_mask(tuple(size), tuple(window), tuple(shift), str(device))
