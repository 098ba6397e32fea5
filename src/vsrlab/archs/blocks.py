"""Small building blocks shared by the architectures (BasicSR names and layouts)."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor


def center_frame_index(num_frame: int, center_frame_idx: int | None = None) -> int:
    """The reference frame of a sliding window: ``num_frame // 2`` unless given; checked to lie inside."""
    idx = num_frame // 2 if center_frame_idx is None else center_frame_idx
    if not 0 <= idx < num_frame:
        raise ValueError(f"center_frame_idx={center_frame_idx} is outside a window of {num_frame} frames")
    return idx


def make_layer(block: type[nn.Module], num_blocks: int, **kwargs) -> nn.Sequential:
    """``num_blocks`` instances of ``block(**kwargs)`` in sequence."""
    return nn.Sequential(*(block(**kwargs) for _ in range(num_blocks)))


class ResidualBlockNoBN(nn.Module):
    """``x + res_scale * conv(relu(conv(x)))``, 3x3 convs, no batch norm (EDSR; BasicSR).

    Parameters ``conv1``, ``conv2``; weights scaled by 0.1 after Kaiming init as BasicSR does.
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, F, H, W)`` -> ``(B, F, H, W)``."""
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class UpsampleOneStep(nn.Sequential):
    """One conv to ``num_out_ch * s^2`` channels and one pixel shuffle:
    ``(B, F, H, W)`` -> ``(B, C, sH, sW)``."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, num_out_ch * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))


class ConvResidualBlocks(nn.Module):
    """A 3x3 conv, LeakyReLU(0.1) and ``num_block`` residual blocks (BasicVSR's propagation branches).

    ``(B, num_in_ch, H, W)`` -> ``(B, num_out_ch, H, W)``; parameters under ``main`` as in BasicSR.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 64, num_block: int = 15) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(num_in_ch, num_out_ch, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            make_layer(ResidualBlockNoBN, num_block, num_feat=num_out_ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class ChannelAttention(nn.Module):
    """RCAN's channel attention: ``x * sigmoid(conv(relu(conv(avgpool(x)))))``, 1x1 convs
    ``num_feat -> num_feat // squeeze_factor -> num_feat`` with biases.

    Parameters ``attention.1`` and ``attention.3`` as in BasicSR (``rcan_arch.py``).
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        squeezed = num_feat // squeeze_factor
        if squeezed < 1:
            raise ValueError(f"num_feat ({num_feat}) must be at least squeeze_factor ({squeeze_factor})")
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, squeezed, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, num_feat, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, F, H, W)`` -> ``(B, F, H, W)``."""
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block (RCAN, Zhang et al. 2018):
    ``x + res_scale * CA(conv(relu(conv(x))))``, 3x3 convs, PyTorch's default initialisation.

    Parameters ``rcab.0`` (conv), ``rcab.2`` (conv), ``rcab.3`` (:class:`ChannelAttention`), as in
    BasicSR, so BasicSR RCAN weights load strictly. RCAB(64): 74,436 parameters; RCAB(128): 297,352.
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16, res_scale: float = 1) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, F, H, W)`` -> ``(B, F, H, W)``."""
        return x + self.rcab(x) * self.res_scale


class ResidualGroup(nn.Module):
    """RCAN's residual group: ``num_block`` :class:`RCAB` s and a 3x3 conv, with a skip over all.

    Parameters ``residual_group.<i>`` and ``conv``, as in BasicSR.
    """

    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int = 16, res_scale: float = 1) -> None:
        super().__init__()
        self.residual_group = make_layer(
            RCAB, num_block, num_feat=num_feat, squeeze_factor=squeeze_factor, res_scale=res_scale
        )
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, F, H, W)`` -> ``(B, F, H, W)``."""
        return x + self.conv(self.residual_group(x))
