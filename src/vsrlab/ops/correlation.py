"""Local correlation (a cost volume) between two feature maps, as FlowNetC and PWC-Net compute it.

A predictor that sees two frames' features only concatenated must learn to compare them before it can
say how far one is shifted; the correlation gives it the comparison directly: for every pixel and every
displacement ``d`` within a radius, how well ``b(x + d)`` matches ``a(x)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def local_correlation(a: Tensor, b: Tensor, radius: int) -> Tensor:
    """Mean over channels of ``a(x) * b(x + d)`` for every ``d = (dy, dx)`` in ``[-radius, radius]^2``.

    Args:
        a, b: ``(B, C, H, W)`` feature maps.
        radius: largest displacement, pixels; ``b`` is zero outside the frame.

    Returns:
        ``(B, (2r+1)^2, H, W)``, channel ``(dy + r) * (2r + 1) + (dx + r)``.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    h, w = a.shape[-2:]
    side = 2 * radius + 1
    padded = F.pad(b, [radius] * 4)
    shifted = (padded[:, :, dy : dy + h, dx : dx + w] for dy in range(side) for dx in range(side))
    return torch.stack([(a * b_d).mean(dim=1) for b_d in shifted], dim=1)


def pyramid_correlation(a: Tensor, b: Tensor, radius: int, levels: int) -> Tensor:
    """:func:`local_correlation` of ``a`` and ``b`` average-pooled by ``2^l`` for ``l < levels``, each
    upsampled (bilinear) back to ``a``'s size: displacements up to ``radius * 2^(levels-1)`` pixels.

    Returns:
        ``(B, levels * (2r+1)^2, H, W)``, finest level first.
    """
    out = []
    for level in range(levels):
        pa, pb = (a, b) if level == 0 else (F.avg_pool2d(a, 2**level, ceil_mode=True),
                                            F.avg_pool2d(b, 2**level, ceil_mode=True))  # fmt: skip
        corr = local_correlation(pa, pb, radius)
        if level:
            corr = F.interpolate(corr, size=a.shape[-2:], mode="bilinear", align_corners=False)
        out.append(corr)
    return torch.cat(out, dim=1)
