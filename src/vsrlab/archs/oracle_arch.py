"""A training-free oracle: multi-frame reconstruction of the centre frame with the true motion.

It answers "how much can the neighbours add if alignment were perfect?" on the synthetic clips, whose
true flow is known (``model.flow_source=batch``): it knows the motion and the degradation, has no
trainable parameters, and its row beside bicubic shows what the neighbours carry
(``vsrlab-eval data=align_bench arch=oracle model.flow_source=batch``, scored like ``arch=bicubic``).

Algorithm, for a window ``y`` ``(B, T, C, h, w)`` with centre ``c`` and flows ``f`` ``(B, T, 2, h, w)`` from
the centre to every frame (LR pixels; ``flow_warp(y[:, t], f[:, t])`` aligns frame ``t`` to the centre,
:mod:`vsrlab.models.flow_source`):

1. **Motion at HR and what is usable.** Each flow is upsampled bilinearly to the HR grid and scaled by
   ``s`` (``F_t``); its inverse ``G_t`` (frame ``t`` to the centre) is the fixed point of
   ``G(p) = -F_t(p + G(p))`` (``inversion_steps`` iterations). A pixel of frame ``t`` is *usable*
   where the inversion is consistent (to half an HR pixel: a pixel disoccluded in frame ``t`` is not,
   its inverse lands on the occluder, which moves otherwise), no points of different motion land
   together (:func:`collisions`: one of them is hidden, the flows cannot say which), its source lies
   inside the centre frame, and (when given) the centre's ``valid`` mask is 1 there. An LR pixel of
   frame ``t`` counts where every HR pixel under its kernel is usable (mask ``M_t``; the centre: all).
2. **Observation model.** ``y_t = D(W_t x)``: the HR centre frame ``x`` resampled at ``p + G_t(p)``
   (bicubic) and degraded by ``D``, the data's degradation (``degradation``: ``BI``, ``BD``, ``area``,
   ``bicubic_noaa`` of :mod:`vsrlab.data.degradations`, on float tensors, without rounding).
3. **Robust least squares.** ``x`` minimises ``sum_t |R_t M_t (D W_t x - y_t)|^2 + smoothness |grad x|^2``
   by conjugate gradients on the normal equations (``A^T`` by autograd: every operator is linear),
   from the bicubic upsampling of the centre frame, ``cg_steps`` steps in each of ``rounds`` rounds,
   each round warm-started from the last, as iterative back-projection (Irani & Peleg, 1991) with
   conjugate-gradient steps. After the first round every LR pixel is reweighted by Cauchy's
   ``R = 1 / (1 + (r / 2.385 sigma)^2)`` of its residual ``r`` (``sigma``: 1.4826 x the residuals'
   median absolute value, at least the known noise), so what the model cannot explain (object edges,
   where pixels mix the two layers; occluders) stops pulling. ``smoothness`` (default ``0.01 + 0.003
   noise_sigma^2``: a Gaussian gradient prior against the known noise) tames what no frame observes
   (the zeros of ``D``) and the noise.
4. **Occluders** (``occlusions``: the LR frames carry flat rectangles): first the centre frame's pixels
   far from the median of the frames that see them (aligned with the flows) are replaced by that
   median and left out, and every LR pixel that the start explains worse than ``max(8 MAD, 64/255)``
   is left out of all rounds; the Cauchy rounds do the rest.
5. **Fallback to bicubic** (MATLAB, :class:`~vsrlab.archs.Bicubic`): one frame; no ``flows`` (with a
   warning: ``model.flow_source`` is not ``batch``); and a sample whose neighbours bring nothing: no
   usable pixel, or copies of the centre frame (zero flow and equal pixels). A least-squares solution
   from the centre frame alone is not bicubic (``D`` of a bicubic upsampling is not the frame), so
   this is a rule, not a limit: the oracle's gain is exactly 0 where the neighbours carry nothing
   (a static clip without noise), and its gain elsewhere includes what fitting ``D`` adds (measure it
   with :meth:`Oracle.solve` on the centre frame alone).

Choices: float32 (float64 gives the same dB to 0.01); outputs are not clipped (as the networks');
``discrepancy`` (off by default) stops each sample's steps at Morozov's discrepancy level: it keeps
smooth clips at bicubic, where the full fit amplifies the quantisation's error, but costs about 1 dB
on textured ones. The flows argument is the VSR Transformer's: ``forward(x, flows=None)``,
``(B, T, 2, h, w)``, zero at the centre; ``valid`` (the data's ``flow_valid``) is optional and the
evaluation does not pass it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.archs.blocks import center_frame_index
from vsrlab.archs.contract import Temporal
from vsrlab.data.degradations import degradation_name, gaussian_kernel_1d
from vsrlab.data.synthetic_options import occlusion_counts
from vsrlab.ops.resize import matlab_imresize_tensor, resize_matrix
from vsrlab.ops.warp import base_grid, flow_warp, grid_sample_exact, pixel_to_grid, resize_flow

Operator = Callable[[Tensor], Tensor]
BASE_SMOOTHNESS = 0.01  # the weight of |grad x|^2 without noise (warp and rounding errors, ~1 grey level)
NOISE_SMOOTHNESS = 0.003  # and its growth with the noise's variance (grey levels^2): 0.31 at sigma 10
NO_FLOWS = "Oracle got no flows (set model.flow_source=batch): its output is the centre frame's bicubic"
REJECT_MADS, REJECT_MIN = 8.0, 64 / 255  # with occluders: residuals of the start beyond both are out


def degradation_operator(degradation: str, scale: int, magnitude: bool = False) -> Operator:
    """The degradation ``degradation`` of :mod:`vsrlab.data.degradations` as a linear map of float
    tensors ``(N, C, H, W)`` -> ``(N, C, H/s, W/s)`` (no rounding); ``magnitude``: the same map with
    the absolute values of its weights (which LR pixels an HR pixel reaches)."""
    name = degradation_name(degradation)
    if name == "area":
        return lambda x: F.avg_pool2d(x, scale)
    if name == "BD":
        g = torch.from_numpy(gaussian_kernel_1d(0.4 * scale, 6))

        def blur_down(x: Tensor) -> Tensor:
            k = g.to(x)
            c = x.shape[1]
            x = F.pad(x, (6, 6, 6, 6), mode="reflect")  # reflect-101, as cv2's default
            x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
            x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
            return x[..., ::scale, ::scale]

        return blur_down
    antialiasing = name == "BI"
    if not magnitude:
        return lambda x: matlab_imresize_tensor(x, 1 / scale, antialiasing)

    def resize_abs(x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        wh, ww = (
            torch.from_numpy(np.abs(resize_matrix(n, n // scale, 1 / scale, antialiasing))).to(x)
            for n in (h, w)
        )
        return wh @ x @ ww.T

    return resize_abs


def invert_flow(flow: Tensor, steps: int = 8) -> tuple[Tensor, Tensor]:
    """Inverse ``G`` ``(N, 2, H, W)`` of the flows ``F`` ``(N, 2, H, W)`` (pixels: ``p`` of the first
    frame is ``p + F(p)`` in the second) and where it is consistent ``(N, 1, H, W)`` (bool): the fixed
    point of ``G(p) = -F(p + G(p))`` after ``steps`` iterations, consistent where the remaining error
    is at most half a pixel."""
    h, w = flow.shape[-2:]
    gx, gy = base_grid(h, w, flow)

    def flow_at(g: Tensor) -> Tensor:
        grid = pixel_to_grid(gx + g[:, 0], gy + g[:, 1], h, w)
        return grid_sample_exact(flow, grid, "bilinear", "border")

    inverse = -flow
    for _ in range(steps):
        inverse = -flow_at(inverse)
    error = (inverse + flow_at(inverse)).norm(dim=1, keepdim=True)
    return inverse, error <= 0.5


def collisions(flow: Tensor, spread: float = 1.0) -> Tensor:
    """Where points with different motion land together ``(N, 1, H, W)`` (bool): pixels of the second
    frame that the flows ``F`` ``(N, 2, H, W)`` of the first reach (nearest pixel, then a 3x3
    neighbourhood) from points whose flows differ by more than ``spread`` pixels in x or y: one of
    them is hidden there (an occlusion), and the flows cannot say which."""
    n, _, h, w = flow.shape
    gx, gy = base_grid(h, w, flow)
    tx, ty = torch.round(gx + flow[:, 0]).long(), torch.round(gy + flow[:, 1]).long()
    inside = ((tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)).view(n, -1)
    index = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).view(n, -1)
    values = flow.view(n, 2, -1)
    big = torch.finfo(flow.dtype).max
    far = torch.zeros(n, 1, h * w, dtype=torch.bool, device=flow.device)
    for c in range(2):
        v = values[:, c]
        lo = torch.full((n, h * w), big, dtype=flow.dtype, device=flow.device)
        hi = torch.full((n, h * w), -big, dtype=flow.dtype, device=flow.device)
        lo = lo.scatter_reduce(1, index, torch.where(inside, v, big), "amin")
        hi = hi.scatter_reduce(1, index, torch.where(inside, v, -big), "amax")
        lo, hi = -F.max_pool2d(-lo.view(n, 1, h, w), 3, 1, 1), F.max_pool2d(hi.view(n, 1, h, w), 3, 1, 1)
        far |= ((hi - lo) > spread).view(n, 1, -1)
    return far.view(n, 1, h, w)


def warp_bicubic(x: Tensor, flow: Tensor) -> Tensor:
    """``x`` ``(N, C, H, W)`` sampled at ``p + flow(p)`` with (PyTorch's) bicubic interpolation, borders
    repeated: ``(N, C, H, W)``."""
    gx, gy = base_grid(x.shape[-2], x.shape[-1], flow)
    grid = pixel_to_grid(gx + flow[:, 0], gy + flow[:, 1], x.shape[-2], x.shape[-1])
    return grid_sample_exact(x, grid, "bicubic", "border")


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner products ``(B, 1, 1, 1)`` of ``(B, ...)`` tensors."""
    return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)


class Oracle(nn.Module):
    """Multi-frame reconstruction of the centre frame from the true flows (module docstring); no
    trainable parameters.

    Args:
        upscale: SR factor ``s``.
        num_frame: frames per window ``T``.
        degradation: the data's degradation (``BI``, ``BD``, ``area``, ``bicubic_noaa``).
        noise_sigma: the data's LR noise std (0-255): sets the smoothness and the least robust scale.
        occlusions: the data's LR frames carry occluders (the ``occlusions`` option): start robustly.
        center_frame_idx: the frame to reconstruct (default ``num_frame // 2``; the flows of
            ``model.flow_source=batch`` start from the middle frame).
        rounds: least-squares rounds, reweighted after the first (1 without ``robust``).
        cg_steps: conjugate-gradient steps per round.
        smoothness: weight of ``|grad x|^2`` (x in [0, 1], per LR pixel of one frame); null:
            ``0.01 + 0.003 * noise_sigma^2``.
        robust: Cauchy reweighting of the residuals (and the start with occluders).
        inversion_steps: fixed-point steps of the flow inversion.
        discrepancy: null, or the misfit (grey levels, RMS, beside the noise) at which a sample's
            conjugate-gradient steps stop.
    """

    temporal: ClassVar[Temporal] = "window"
    offset_axes: ClassVar[tuple[str, str] | None] = None

    def __init__(
        self,
        upscale: int = 4,
        num_frame: int = 5,
        degradation: str = "BI",
        noise_sigma: float = 0.0,
        occlusions: bool | Sequence[int] = False,
        center_frame_idx: int | None = None,
        rounds: int = 3,
        cg_steps: int = 12,
        smoothness: float | None = None,
        robust: bool = True,
        inversion_steps: int = 8,
        discrepancy: float | None = None,
    ) -> None:
        super().__init__()
        self.upscale, self.num_frame = int(upscale), int(num_frame)
        self.center_frame_idx = center_frame_index(num_frame, center_frame_idx)
        self.degradation = degradation_name(degradation)
        self.noise_sigma, self.occlusions = float(noise_sigma), occlusion_counts(occlusions) is not None
        self.robust, self.rounds, self.cg_steps = bool(robust), int(rounds) if robust else 1, int(cg_steps)
        self.inversion_steps = int(inversion_steps)
        self.discrepancy = None if discrepancy is None else float(discrepancy)
        if smoothness is None:  # a Gaussian prior on gradients against Gaussian noise: weight ~ sigma^2
            smoothness = BASE_SMOOTHNESS + NOISE_SMOOTHNESS * self.noise_sigma**2
        self.smoothness = float(smoothness)
        self.down = degradation_operator(self.degradation, self.upscale)
        self.down_abs = degradation_operator(self.degradation, self.upscale, magnitude=True)

    def bicubic(self, x: Tensor) -> Tensor:
        """MATLAB bicubic of the centre frame: ``(B, T, C, h, w)`` -> ``(B, C, s*h, s*w)``."""
        return matlab_imresize_tensor(x[:, self.center_frame_idx], self.upscale)

    def forward(self, x: Tensor, flows: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
        """``x`` ``(B, T, C, h, w)`` in [0, 1] -> ``(B, C, s*h, s*w)``.

        Args:
            flows: ``(B, T, 2, h, w)`` from the centre frame to each frame (zero at the centre), LR
                pixels; without them (no ``model.flow_source=batch``) a warning and bicubic.
            valid: optional ``(B, T, 1, h, w)``, 1 where the centre's pixel is visible in frame ``t``
                (the data's ``flow_valid``).
        """
        if x.dim() != 5 or x.shape[1] != self.num_frame:
            raise ValueError(f"expected windows (B, {self.num_frame}, C, h, w), got {tuple(x.shape)}")
        bicubic = self.bicubic(x)
        if self.num_frame == 1:
            return bicubic
        if flows is None:  # nothing to align with: say so, and give the centre frame's bicubic
            warnings.warn(NO_FLOWS, stacklevel=2)
            return bicubic
        if flows.shape != (x.shape[0], x.shape[1], 2, *x.shape[-2:]):
            shapes = f"x {tuple(x.shape)}, flows {tuple(flows.shape)}"
            raise ValueError(f"flows must be (B, T, 2, h, w) of the window: {shapes}")
        # the solve takes A^T from autograd: ordinary tensors even under inference mode (evaluation)
        with torch.autocast(x.device.type, enabled=False), torch.inference_mode(False):
            y, flows = x.float().clone(), flows.float().clone()
            valid = None if valid is None else valid.clone()
            inverse, mask, seen = self.masks(flows, valid)
            informed = self._informed(y, flows, mask)
            if not bool(informed.any()):
                return bicubic
            est = self.solve(y, flows, inverse, mask, seen).detach()
        return torch.where(informed.view(-1, 1, 1, 1), est, bicubic.float()).to(x.dtype)

    def solve(self, y: Tensor, flows: Tensor, inverse: Tensor, mask: Tensor, seen: Tensor) -> Tensor:
        """The least-squares estimate ``(B, C, H, W)`` of the window ``y`` ``(B, T, C, h, w)``, given the
        flows, the inverse flows and masks of :meth:`masks` (module docstring, steps 3 and 4)."""
        base, centre = mask, y[:, self.center_frame_idx]  # base: 1 where a pixel may count at all
        if self.occlusions and self.robust:
            centre, outlier = self._clean_centre(y, flows, seen)
            base = mask.clone()
            base[:, self.center_frame_idx] *= ~outlier
        est = matlab_imresize_tensor(centre, self.upscale)
        if self.occlusions and self.robust:  # what the start cannot explain at all is out from the start
            residual = (self.observe(est, inverse) - y).abs().amax(2, keepdim=True)
            sigma = self._scale(residual, base)
            base = base * (residual <= torch.clamp_min(REJECT_MADS * sigma, REJECT_MIN))
        weights = base.expand_as(y)
        for round_ in range(self.rounds):
            if round_:  # Cauchy weights of the last estimate's residuals
                residual = (self.observe(est, inverse) - y).abs()
                sigma = self._scale(residual, base).clamp_min(self.noise_sigma / 255)
                weights = base / (1 + (residual / (2.385 * sigma)) ** 2)
            rhs = self._data_term(y, inverse, weights, est)
            est = self._cg(est, rhs, inverse, weights, y, base)
        return est

    def masks(self, flows: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Inverse HR flows ``(B, T, 2, H, W)`` (frame ``t`` to the centre), LR masks ``(B, T, 1, h, w)``
        (1: the LR pixel of frame ``t`` sees only usable HR pixels; the centre: all 1) and where the
        centre's LR pixels are seen in each frame ``(B, T, 1, h, w)`` (bool: the point at the pixel's
        centre lands on a usable pixel of frame ``t``)."""
        b, t, _, h, w = flows.shape
        s, ci = self.upscale, self.center_frame_idx
        flat = flows.reshape(b * t, 2, h, w)
        hr = resize_flow(flat, (h * s, w * s))
        inverse, usable = invert_flow(hr, self.inversion_steps)
        usable &= ~collisions(hr)
        gx, gy = base_grid(h * s, w * s, hr)
        px, py = gx + inverse[:, 0], gy + inverse[:, 1]
        usable &= ((px >= 0) & (px <= w * s - 1) & (py >= 0) & (py <= h * s - 1))[:, None]
        if valid is not None:  # the centre's visibility, read where frame t's pixels come from
            up = F.interpolate(valid.reshape(b * t, 1, h, w).float(), scale_factor=s, mode="nearest")
            usable &= grid_sample_exact(up, pixel_to_grid(px, py, h * s, w * s), "nearest", "zeros") > 0.5
        mask = (self.down_abs((~usable).float()) <= 1e-6).float().view(b, t, 1, h, w)
        mask[:, ci] = 1.0
        inverse = inverse.view(b, t, 2, h * s, w * s)
        inverse[:, ci] = 0.0
        lx, ly = base_grid(h, w, hr)
        cx, cy = (lx + 0.5 + flat[:, 0]) * s - 0.5, (ly + 0.5 + flat[:, 1]) * s - 0.5  # in frame t, HR
        grid = pixel_to_grid(cx, cy, h * s, w * s)
        seen = grid_sample_exact(usable.float(), grid, "nearest", "zeros").view(b, t, 1, h, w) > 0.5
        if valid is not None:
            seen &= valid > 0.5
        seen[:, ci] = True
        return inverse, mask, seen

    def observe(self, x: Tensor, inverse: Tensor) -> Tensor:
        """``D(W_t x)`` of every frame: HR centre ``(B, C, H, W)`` -> LR frames ``(B, T, C, h, w)``."""
        b, t = inverse.shape[:2]
        hr = x[:, None].expand(-1, t, -1, -1, -1).reshape(b * t, *x.shape[1:])
        lr = self.down(warp_bicubic(hr, inverse.reshape(b * t, *inverse.shape[2:])))
        return lr.view(b, t, *lr.shape[1:])

    def _normal(self, v: Tensor, inverse: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """``(A^T W A + smoothness L^T L) v`` for ``v`` ``(B, C, H, W)``, and ``A v`` ``(B, T, C, h, w)``."""
        with torch.enable_grad():
            v = v.detach().requires_grad_(True)
            lr = self.observe(v, inverse)
            dx, dy = v[..., :, 1:] - v[..., :, :-1], v[..., 1:, :] - v[..., :-1, :]
            prior = (dx * dx.detach()).sum() + (dy * dy.detach()).sum()
            energy = (weights * lr * lr.detach()).sum() + self.smoothness / self.upscale**2 * prior
            (grad,) = torch.autograd.grad(energy, v)
        return grad, lr.detach()

    def _data_term(self, y: Tensor, inverse: Tensor, weights: Tensor, like: Tensor) -> Tensor:
        """``A^T W y`` ``(B, C, H, W)``."""
        with torch.enable_grad():
            v = torch.zeros_like(like, requires_grad=True)
            (grad,) = torch.autograd.grad(self.observe(v, inverse), v, grad_outputs=weights * y)
        return grad

    def _cg(
        self, x: Tensor, rhs: Tensor, inverse: Tensor, weights: Tensor, y: Tensor, base: Tensor
    ) -> Tensor:
        """``cg_steps`` conjugate-gradient steps on the normal equations from ``x`` (weights ``W``), per
        sample; with ``discrepancy``, a sample stops once the RMS misfit ``|A x - y|`` over ``base``
        reaches ``sqrt(discrepancy^2 + noise_sigma^2)`` (Morozov: closer than its errors fits the errors)."""
        n_x, a_x = self._normal(x, inverse, weights)
        r, misfit = rhs - n_x, y - a_x
        level = ((self.discrepancy**2 + self.noise_sigma**2) / 255**2) if self.discrepancy else -1.0
        total = base.expand_as(y).flatten(1).sum(1).clamp_min(1e-12)

        def active(misfit: Tensor) -> Tensor:  # (B, 1, 1, 1): still above the level
            return ((base * misfit * misfit).flatten(1).sum(1) / total > level).view(-1, 1, 1, 1)

        going = active(misfit)
        p, rr = r, _dot(r, r)
        for _ in range(self.cg_steps):
            if not bool(going.any()):
                break
            ap, a_p = self._normal(p, inverse, weights)
            alpha = torch.where(going, rr / _dot(p, ap).clamp_min(1e-30), 0.0)
            x, r, misfit = x + alpha * p, r - alpha * ap, misfit - alpha[:, None] * a_p
            going = going & active(misfit)
            rr_new = _dot(r, r)
            p, rr = r + rr_new / rr.clamp_min(1e-30) * p, rr_new
        return x

    def _clean_centre(self, y: Tensor, flows: Tensor, seen: Tensor) -> tuple[Tensor, Tensor]:
        """The centre frame ``(B, C, h, w)`` with its outliers ``(B, 1, h, w)`` (bool) replaced by the
        median of the frames that see them, warped to the centre (bilinear). Outliers: pixels seen by
        at least two neighbours and farther than ``max(4 * 1.4826 * MAD, 24/255)`` from that median."""
        b, t, c, h, w = y.shape
        ci = self.center_frame_idx
        aligned = flow_warp(y.reshape(b * t, c, h, w), flows.reshape(b * t, 2, h, w), padding_mode="border")
        median = torch.where(seen, aligned.view(b, t, c, h, w), torch.nan).nanmedian(dim=1).values
        deviation = (y[:, ci] - median).abs().amax(1, keepdim=True)
        mad = deviation.flatten(1).median(1).values.view(-1, 1, 1, 1)
        outlier = (seen.sum(1) >= 3) & (deviation > torch.clamp_min(4 * 1.4826 * mad, 24 / 255))
        return torch.where(outlier, median, y[:, ci]), outlier

    def _informed(self, y: Tensor, flows: Tensor, mask: Tensor) -> Tensor:
        """``(B,)`` bool: some neighbour brings information the centre frame lacks: a usable pixel, and
        not a copy of the centre frame (zero flow, up to 1e-6, and equal pixels)."""
        ci = self.center_frame_idx
        usable = mask.flatten(2).amax(2) > 0  # (B, T)
        still = flows.flatten(2).abs().amax(2) <= 1e-6
        copy = still & ((y - y[:, ci : ci + 1]).flatten(2).abs().amax(2) == 0)
        usable[:, ci] = False
        return (usable & ~copy).any(1)

    @staticmethod
    def _scale(residual: Tensor, mask: Tensor) -> Tensor:
        """Per-sample robust scale ``(B, 1, 1, 1, 1)`` of ``residual`` ``(B, T, C, h, w)``: 1.4826 x its
        median absolute value over ``mask`` (``(B, T, 1, h, w)``, > 0: counted), at least 0.5/255."""
        sigmas = []
        for r, m in zip(residual, mask.expand_as(residual), strict=True):
            values = r[m > 0]
            sigmas.append(1.4826 * values.median() if values.numel() else r.new_tensor(1.0))
        return torch.stack(sigmas).clamp_min(0.5 / 255).view(-1, 1, 1, 1, 1)
