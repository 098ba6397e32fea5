"""Multi-frame self-attention: the transformer blocks shared by PSRT-recurrent and the VSR Transformer.

Shi et al., "Rethinking Alignment in Video Super-Resolution Transformers" (NeurIPS 2022), Sec. 5
and Fig. 6: a multi-frame self-attention block (MFSAB) is a residual group of ``depth`` Swin
blocks over the tokens of T frames, with 3-D windows ``(d, h, w)`` so one window spans several
frames; odd blocks use shifted windows. Parameter names follow the official release
(``SwinIRFM``, ``RSTB``, ``SwinTransformerBlock``, ``WindowAttention``) so its checkpoints load.

Choices where the reference behaves in a particular way, kept for equal outputs: tokens are
zero-padded *after* the first LayerNorm; padded tokens are attended to (not masked) in unshifted
windows; the shifted-window mask is computed for the module's ``num_frames`` (the recurrent model
always feeds exactly that many frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from vsrlab.ops.attention_windows import (
    Window,
    merge_windows,
    pad_to_windows,
    partition_windows,
    relative_position_index,
    shifted_window_mask,
)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch of a whole sample with probability ``drop_prob``
    during training, scaling kept samples by ``1 / (1 - drop_prob)`` (Huang et al., ECCV 2016)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x * torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep).div_(keep)


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``: ``C -> hidden -> C`` on the last axis."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3-D windows with a learned relative position bias.

    ``softmax(q k^T / sqrt(head_dim) + B + mask) v`` with ``B`` looked up in
    ``relative_position_bias_table`` ``((2d-1)(2h-1)(2w-1), heads)`` by
    :func:`~vsrlab.ops.attention_windows.relative_position_index` (stored as a buffer, as the
    reference does, so its checkpoints load strictly). Computed by
    ``F.scaled_dot_product_attention``.
    """

    def __init__(self, dim: int, window_size: Sequence[int], num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.window_size: Window = tuple(window_size)  # type: ignore[assignment]
        self.num_heads = num_heads
        d, h, w = self.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * d - 1) * (2 * h - 1) * (2 * w - 1), num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(self.window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """``(heads, N, N)`` bias of every token pair of a window."""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` ``(B * nW, N, C)``; ``mask`` ``(nW, N, N)`` or None -> ``(B * nW, N, C)``."""
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.position_bias()  # (heads, N, N)
        if mask is not None:  # windows are batch-major: view them (B, nW, ...) and broadcast the mask
            nw = mask.shape[0]
            qkv = qkv.reshape(3, bw // nw, nw, self.num_heads, n, c // self.num_heads)
            bias = bias + mask.unsqueeze(1).to(bias.dtype)  # (nW, heads, N, N)
            if torch.compiler.is_exporting():  # ONNX attention takes 4-D tensors: the mask per window
                qkv = qkv.flatten(1, 2)
                bias = bias.expand(bw // nw, *bias.shape).flatten(0, 1)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias.to(qkv.dtype))
        out = out.reshape(bw, self.num_heads, n, -1).transpose(1, 2)
        if torch.compiler.is_exporting():  # the ONNX converter's strides of attention differ from eager's
            out = out.clone(memory_format=torch.contiguous_format)
        return self.proj(out.reshape(bw, n, c))


class SwinBlock3D(nn.Module):
    """Pre-norm Swin block on ``(B, D, H, W, C)`` tokens: ``x + DropPath(W-MSA(LN x))`` then
    ``x + DropPath(MLP(LN x))`` (Liu et al. 2021, Eq. 3); ``shift_size`` > 0 on any axis rolls
    the windows (SW-MSA)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: Sequence[int],
        shift_size: Sequence[int] = (0, 0, 0),
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size: Window = tuple(window_size)  # type: ignore[assignment]
        self.shift_size: Window = tuple(shift_size)  # type: ignore[assignment]
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x`` ``(B, D, H, W, C)``; ``mask`` from :func:`shifted_window_mask` (used when shifted)."""
        b = x.shape[0]
        shifted = any(self.shift_size)
        y, (d, h, w) = pad_to_windows(self.norm1(x), self.window_size)
        if shifted:
            y = torch.roll(y, shifts=tuple(-s for s in self.shift_size), dims=(1, 2, 3))
        size = (b, *y.shape[1:4])
        y = self.attn(partition_windows(y, self.window_size), mask if shifted else None)
        y = merge_windows(y, self.window_size, size)
        if shifted:
            y = torch.roll(y, shifts=self.shift_size, dims=(1, 2, 3))
        x = x + self.drop_path(y[:, :d, :h, :w])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinLayer3D(nn.Module):
    """``depth`` Swin blocks, even ones unshifted, odd ones shifted by ``(d, h/2, w/2)``
    (the reference's temporal shift is the whole temporal window); parameters under ``blocks``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: Sequence[int],
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path: Sequence[float] = (),
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        d, h, w = window_size
        rates = list(drop_path) or [0.0] * depth
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinBlock3D(
                dim,
                num_heads,
                window_size,
                (0, 0, 0) if i % 2 == 0 else (d, h // 2, w // 2),
                mlp_ratio,
                qkv_bias,
                rates[i],
            )
            for i in range(depth)
        )

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, D, H, W, C)`` -> ``(B, D, H, W, C)``."""
        for blk in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = checkpoint(blk, x, mask, use_reentrant=False)
            else:
                x = blk(x, mask)
        return x


class MFSAB(nn.Module):
    """Multi-frame self-attention block: Swin layer, 3x3 conv per frame, plus the block input
    (the reference's ``RSTB`` with ``resi_connection='1conv'``; parameters ``residual_group``, ``conv``)."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: Sequence[int], **layer_kwargs
    ) -> None:
        super().__init__()
        self.residual_group = SwinLayer3D(dim, depth, num_heads, window_size, **layer_kwargs)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, T, H, W, C)`` tokens -> same."""
        b, t, h, w, c = x.shape
        y = self.residual_group(x, mask)
        y = self.conv(y.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w))
        return x + y.view(b, t, c, h, w).permute(0, 1, 3, 4, 2)


def mfsab_layers(
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: Sequence[int],
    mlp_ratio: float = 2.0,
    qkv_bias: bool = True,
    drop_path_rate: float = 0.1,
    use_checkpoint: bool = False,
) -> nn.ModuleList:
    """One MFSAB per entry of ``depths``; stochastic-depth rates ``linspace(0, drop_path_rate)``
    over all their blocks (computed in Python, so models build on the meta device too)."""
    if len(depths) != len(num_heads):
        raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
    total = sum(depths)
    rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return nn.ModuleList(
        MFSAB(
            embed_dim,
            depth,
            heads,
            window_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path=rates[start : start + depth],
            use_checkpoint=use_checkpoint,
        )
        for depth, heads, start in zip(depths, num_heads, starts, strict=True)
    )


class FrameFusion(nn.Module):
    """The transformer body both PSRT models share: LayerNorm (``patch_embed.norm``), MFSABs
    (``layers``), LayerNorm (``norm``), then a 3x3 conv (``conv_after_body``) on one frame's
    tokens plus that frame's input. Subclasses call :meth:`build_fusion` in ``__init__``."""

    def build_fusion(
        self, embed_dim: int, window_size: Sequence[int], patch_norm: bool = True, **layers
    ) -> None:
        self.window_size: Window = tuple(int(s) for s in window_size)  # type: ignore[assignment]
        self.shift_size: Window = (self.window_size[0], self.window_size[1] // 2, self.window_size[2] // 2)
        self.patch_embed = nn.Module()
        self.patch_embed.norm = nn.LayerNorm(embed_dim) if patch_norm else nn.Identity()
        self.layers = mfsab_layers(embed_dim, window_size=self.window_size, **layers)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        for module in (self.patch_embed, self.layers, self.norm):
            module.apply(init_transformer_weights)

    def fuse_frames(self, x: Tensor, centre: int, mask_frames: int | None = None) -> Tensor:
        """``(B, T, C, H, W)`` -> ``(B, C, H, W)``, the fused features of frame ``centre``.

        ``mask_frames``: the frame count the shifted-window mask is computed for (default T).
        """
        b, t, c, h, w = x.shape
        tokens = self.patch_embed.norm(x.permute(0, 1, 3, 4, 2))  # (B, T, H, W, C)
        size = (mask_frames or t, h, w)
        mask = shifted_window_mask(size, self.window_size, self.shift_size, x.device)
        for layer in self.layers:
            tokens = layer(tokens, mask)
        tokens = self.norm(tokens)
        return self.conv_after_body(tokens[:, centre].permute(0, 3, 1, 2)) + x[:, centre]


class MultiFrameSwin(FrameFusion):
    """A stack of MFSABs fusing T frames of features into the centre frame's (``SwinIRFM``).

    ``(B, T, embed_dim, H, W)`` -> :class:`FrameFusion` of the centre frame:
    ``(B, embed_dim, H, W)``. Input with ``in_chans`` (3) or 64 channels first goes through
    ``conv_first`` / ``conv_first_feat``; PSRT-recurrent feeds ``embed_dim`` channels, so those
    two and ``conv_before_upsample`` are never used there but kept, as in the release (141,784
    parameters in the official configuration), so checkpoints load strictly and the parameter
    count is the paper's.

    Args:
        in_chans, embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias,
        drop_path_rate, patch_norm, use_checkpoint, num_frames: as the reference's ``SwinIRFM``.
        feat_chans: channels of the feature input ``conv_first_feat`` accepts (64).
    """

    def __init__(
        self,
        in_chans: int = 3,
        embed_dim: int = 120,
        depths: Sequence[int] = (6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6),
        window_size: Sequence[int] = (3, 8, 8),
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        use_checkpoint: bool = False,
        num_frames: int = 3,
        feat_chans: int = 64,
    ) -> None:
        super().__init__()
        self.in_chans, self.feat_chans, self.embed_dim = in_chans, feat_chans, embed_dim
        self.num_frames = num_frames
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.conv_first_feat = nn.Conv2d(feat_chans, embed_dim, 3, 1, 1)
        self.build_fusion(
            embed_dim,
            window_size,
            patch_norm,
            depths=depths,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            use_checkpoint=use_checkpoint,
        )
        self.conv_before_upsample = nn.Conv2d(embed_dim, feat_chans, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C, H, W)`` with C in {in_chans, feat_chans, embed_dim} -> ``(B, embed_dim, H, W)``."""
        b, t, c, h, w = x.shape
        if c != self.embed_dim:
            if c not in (self.in_chans, self.feat_chans):
                raise ValueError(
                    f"MultiFrameSwin takes {self.in_chans}, {self.feat_chans} or {self.embed_dim} "
                    f"channels, got {c}"
                )
            conv = self.conv_first if c == self.in_chans else self.conv_first_feat
            x = conv(x.reshape(b * t, c, h, w)).view(b, t, -1, h, w)
        return self.fuse_frames(x, t // 2, self.num_frames)


def init_transformer_weights(m: nn.Module) -> None:
    """The reference's initialisation: Linear weights truncated normal (std 0.02), biases 0;
    LayerNorm weight 1, bias 0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
