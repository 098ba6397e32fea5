"""Direct implementation of the deformable convolution of Eq. 1, for tests and benchmarks.

    y(p) = sum_k w_k * m_k(p) * x(p + p_k + dp_k(p)),
    x(q) = sum_{corners c of q} max(0, 1-|q_y-c_y|) * max(0, 1-|q_x-c_x|) * x(c)   (bilinear, Eq. 2)

(Dai et al. 2017; Zhu et al. 2019.) Every kernel tap gathers its four bilinear corners
explicitly with integer indexing, corners outside the image contributing zero, and is
multiplied into the output tap by tap. It shares no code with :mod:`vsrlab.ops.deform_conv`,
so agreement between the two is evidence that both are right.
"""

from __future__ import annotations

import torch
from torch import Tensor


def deform_conv2d_gather(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Eq. 1 by explicit bilinear gathering; same arguments as ``torchvision.ops.deform_conv2d``
    (square stride, padding and dilation)."""
    b, cin, h, w = input.shape
    cout, cin_g, kh, kw = weight.shape
    groups = cin // cin_g
    k = kh * kw
    og = offset.shape[1] // (2 * k)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    off = offset.view(b, og, k, 2, ho, wo)
    msk = mask.view(b, og, k, ho, wo) if mask is not None else None
    flat = input.reshape(b, og, cin // og, h * w)
    base_y = (torch.arange(ho, device=input.device, dtype=input.dtype) * stride - padding).view(ho, 1)
    base_x = (torch.arange(wo, device=input.device, dtype=input.dtype) * stride - padding).view(1, wo)

    out = input.new_zeros(b, cout, ho, wo)
    for tap in range(k):
        ki, kj = divmod(tap, kw)
        py = base_y + ki * dilation + off[:, :, tap, 0]  # (B, G, Ho, Wo)
        px = base_x + kj * dilation + off[:, :, tap, 1]
        y0, x0 = torch.floor(py), torch.floor(px)
        value = input.new_zeros(b, og, cin // og, ho * wo)
        for cy, cx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
            wgt = (1 - (py - cy).abs()) * (1 - (px - cx).abs())
            inside = (cy >= 0) & (cy <= h - 1) & (cx >= 0) & (cx <= w - 1)
            index = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).long().view(b, og, 1, ho * wo)
            gathered = torch.gather(flat, 3, index.expand(b, og, cin // og, ho * wo))
            value = value + gathered * (wgt * inside).view(b, og, 1, ho * wo)
        if msk is not None:
            value = value * msk[:, :, tap].reshape(b, og, 1, ho * wo)
        value = value.view(b, groups, cin_g, ho, wo)
        w_tap = weight[:, :, ki, kj].view(groups, cout // groups, cin_g)
        out = out + torch.einsum("goc,bgchw->bgohw", w_tap, value).reshape(b, cout, ho, wo)
    if bias is not None:
        out = out + bias.view(1, cout, 1, 1)
    return out
