"""Local Attribution Maps (Gu & Dong, "Interpreting Super-Resolution Networks with Local Attribution
Maps", CVPR 2021) for image and video SR networks, and the diffusion index.

LAM attributes one local feature of the SR output, ``D(F(x))``, to the input pixels with path-integrated
gradients along a progressive-blur path ``gamma(alpha)`` from a blurred baseline to the input (Eq. 5-7):

    LAM_i = integral_0^1 dD(F(gamma(a)))/dgamma(a)_i * dgamma(a)_i/da da

computed as the reference code (X-Lowlevel-Vision/LAM_Demo) does, so that the maps agree with it:

- detector ``D`` (Eq. 3): ``sqrt(dh^2 + dw^2)`` of squared forward differences of the output on its
  ``(H-1) x (W-1)`` grid, summed over channels and the ``window_size`` square at ``(row, col)``
  (``detector="sum"``: the plain sum of the output window, the reference's ``attr_id``);
- path (Eq. 6): Gaussian kernels on the integer grid ``arange(-l // 2 + 1, l // 2 + 1)`` with
  ``sigma_i = linspace(sigma, 0, fold + 1)[i]`` (``exp(-r^2 / (2 (sigma_i + 1e-5)^2))``, normalised);
  path image ``i = 0 .. fold-1`` is the input filtered with kernel ``i + 1`` (the last one is the input),
  its derivative the input filtered with ``(kernel_{i+1} - kernel_i) * fold``; reflect-101 borders;
- integration: the mean over the ``fold`` steps of gradient x path derivative (a right-endpoint Riemann
  sum), NaN gradients (``sqrt`` at 0) set to 0;
- map: ``|sum over channels|`` divided by its maximum; diffusion index ``DI = (1 - Gini) * 100`` of the
  map (Eq. 8).

Video (no published tool): every input frame is blurred along the same path and the detector is read on
the centre output (sliding-window networks) or on output ``frame`` (recurrent networks). The map is
normalised jointly over all frames, so frames compare, and each frame's share of the total attribution
is reported; the diffusion index is taken over the joint ``(T, h, w)`` map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

Detector = Literal["gradient", "sum"]


@dataclass
class LAMResult:
    """What :func:`local_attribution_map` returns (tensors on the CPU, float32).

    Attributes:
        attribution_map: ``|sum over channels|`` of the attribution divided by its maximum: ``(h, w)``
            for an image model, ``(T, h, w)`` for a video model (one normalisation for all frames).
        frame_shares: ``(T,)`` each input frame's share of the total absolute attribution (sums to 1);
            ``(1,)`` for an image model.
        diffusion_index: ``(1 - gini_index(attribution_map)) * 100``.
        gini: the Gini index of the map.
        output: the SR output of the input ``(C, H, W)`` (the output frame the detector read).
        attribution: the raw signed attribution per channel, ``(C, h, w)`` or ``(T, C, h, w)``.
        row, col, window_size: the output window (HR pixels, top-left corner).
        frame: the output frame of a recurrent network, else None.
    """

    attribution_map: Tensor
    frame_shares: Tensor
    diffusion_index: float
    gini: float
    output: Tensor
    attribution: Tensor
    row: int
    col: int
    window_size: int
    frame: int | None = None


def gini_index(values: Tensor | np.ndarray) -> float:
    """Gini index of ``values`` (flattened) as the LAM reference defines it: shifted by the minimum if any
    value is negative, ``+ 1e-7``, sorted ascending, ``sum_i (2i - n - 1) a_i / (n sum_i a_i)``, ``i = 1..n``.
    0 for a uniform array, ``(n - 1) / n`` for a one-hot one (up to the 1e-7)."""
    a = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("gini_index of an empty array")
    if a.min() < 0:
        a = a - a.min()
    a = np.sort(a + 1e-7)
    n = a.size
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * a) / (n * np.sum(a)))


def diffusion_index(attribution_map: Tensor | np.ndarray) -> float:
    """The diffusion index of LAM (Eq. 8): ``(1 - Gini) * 100``; larger = attribution spread wider."""
    return (1.0 - gini_index(attribution_map)) * 100.0


def gaussian_kernel(size: int, sigma: float, epsilon: float = 1e-5) -> np.ndarray:
    """Isotropic ``size x size`` Gaussian (float64, sums to 1) on the reference's grid
    ``arange(-size // 2 + 1, size // 2 + 1)`` (``-4 .. 4`` for 9)."""
    ax = np.arange((-size) // 2 + 1.0, size // 2 + 1.0)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    kernel = np.exp(-(xx**2 + yy**2) / (2.0 * (sigma + epsilon) ** 2))
    return kernel / kernel.sum()


def filter_reflect101(images: Tensor, kernel: np.ndarray) -> Tensor:
    """Correlate every channel of ``images`` ``(..., h, w)`` with ``kernel`` ``(l, l)`` (OpenCV's
    ``filter2D`` with its default reflect-101 border), computed in float64; same dtype out."""
    size = kernel.shape[0]
    if kernel.shape != (size, size):
        raise ValueError(f"kernel must be square, got {kernel.shape}")
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    # the anchor of an even kernel is size // 2 on both sides' count, as OpenCV's
    before, after = size // 2, size - 1 - size // 2
    if max(before, after) >= min(h, w):
        raise ValueError(
            f"a {size}x{size} kernel needs images larger than {max(before, after)} px, got {h}x{w}"
        )
    x = images.reshape(-1, 1, h, w).double()
    x = F.pad(x, (before, after, before, after), mode="reflect")
    weight = torch.from_numpy(kernel).to(x.device).view(1, 1, size, size)
    return F.conv2d(x, weight).reshape(*lead, h, w).to(images.dtype)


def blur_path(
    images: Tensor, sigma: float = 1.2, fold: int = 50, kernel_size: int = 9
) -> tuple[Tensor, Tensor]:
    """The progressive-blur path of LAM (Eq. 6) for ``images`` ``(..., h, w)``.

    Returns:
        ``(path, derivative)``, each ``(fold, ..., h, w)`` float32: path image ``i`` is ``images`` blurred
        with ``sigma_{i+1}`` (the last is ``images``), its derivative ``images`` filtered with
        ``(kernel_{i+1} - kernel_i) * fold``.
    """
    if fold < 1:
        raise ValueError(f"fold must be >= 1, got {fold}")
    sigmas = np.linspace(sigma, 0.0, fold + 1)
    kernels = [gaussian_kernel(kernel_size, s) for s in sigmas]
    x = images.detach().float()
    path = torch.stack([filter_reflect101(x, kernels[i + 1]) for i in range(fold)])
    derivative = torch.stack(
        [filter_reflect101(x, (kernels[i + 1] - kernels[i]) * fold) for i in range(fold)]
    )
    return path, derivative


def gradient_detector(output: Tensor, row: int, col: int, window_size: int) -> Tensor:
    """LAM's detector (Eq. 3): the gradient magnitude of ``output`` ``(B, C, H, W)`` summed over channels
    and the window at ``(row, col)`` of its ``(H-1) x (W-1)`` grid; ``(B,)``."""
    dh = (output[:, :, :-1, :] - output[:, :, 1:, :]).square()
    dw = (output[:, :, :, :-1] - output[:, :, :, 1:]).square()
    magnitude = (dh[:, :, :, :-1] + dw[:, :, :-1, :]).sqrt()
    return magnitude[:, :, row : row + window_size, col : col + window_size].sum(dim=(1, 2, 3))


def sum_detector(output: Tensor, row: int, col: int, window_size: int) -> Tensor:
    """The plain sum of the output window (the reference's ``attr_id``), a linear detector; ``(B,)``."""
    return output[:, :, row : row + window_size, col : col + window_size].sum(dim=(1, 2, 3))


DETECTORS: dict[str, Callable[[Tensor, int, int, int], Tensor]] = {
    "gradient": gradient_detector,
    "sum": sum_detector,
}


def _output_frame(output: Tensor, video: bool, frame: int | None, frames: int) -> tuple[Tensor, int | None]:
    """The ``(B, C, H, W)`` output the detector reads, and the recurrent output frame picked."""
    if output.dim() == 4:
        if frame is not None:
            raise ValueError(f"frame={frame} given, but the model returns one frame {tuple(output.shape)}")
        return output, None
    if output.dim() == 5 and video:
        index = frames // 2 if frame is None else frame
        if not 0 <= index < output.shape[1]:
            raise ValueError(f"frame={frame} outside the {output.shape[1]} output frames")
        return output[:, index], index
    raise ValueError(f"the model returned {tuple(output.shape)}: expected (1, C, H, W) or (1, T, C, H, W)")


def local_attribution_map(
    model: nn.Module,
    lq: Tensor,
    row: int,
    col: int,
    window_size: int = 16,
    sigma: float = 1.2,
    fold: int = 50,
    kernel_size: int = 9,
    frame: int | None = None,
    detector: Detector = "gradient",
    steps_per_batch: int = 1,
    progress: bool = False,
) -> LAMResult:
    """LAM of the ``window_size`` output window at ``(row, col)`` (HR pixels, top-left corner).

    Args:
        model: an image SR network taking ``(1, C, h, w)``, a sliding-window network taking
            ``(1, T, C, h, w)`` and returning the centre frame, or a recurrent one returning
            ``(1, T, C, H, W)``; put in eval mode by the caller (nothing here changes its mode).
        lq: the input, ``(1, C, h, w)`` (image) or ``(1, T, C, h, w)`` (video), values in [0, 1].
        frame: the output frame of a recurrent network (default the centre one, ``T // 2``).
        detector: ``"gradient"`` (LAM's) or ``"sum"`` (linear).
        steps_per_batch: path images per forward pass (a speed option: per-sample gradients are
            independent for networks without batch-coupled layers in eval mode).
        progress: show a progress bar over the path steps.

    Raises:
        ValueError: an input of another shape, a window outside the detector's grid, a bad ``frame``.
    """
    if lq.dim() not in (4, 5) or lq.shape[0] != 1:
        raise ValueError(f"lq must be (1, C, h, w) or (1, T, C, h, w), got {tuple(lq.shape)}")
    video = lq.dim() == 5
    frames = lq.shape[1] if video else 1
    detect = DETECTORS.get(detector)
    if detect is None:
        raise ValueError(f"detector must be one of {sorted(DETECTORS)}, got {detector!r}")
    device = next((p.device for p in model.parameters()), lq.device)
    path, derivative = blur_path(lq[0].cpu(), sigma, fold, kernel_size)

    attribution = torch.zeros(lq.shape[1:], dtype=torch.float64)
    output: Tensor | None = None
    picked: int | None = None
    bounds = range(0, fold, max(1, steps_per_batch))
    for start in tqdm(bounds, desc="LAM path", disable=not progress, unit="batch"):
        stop = min(fold, start + max(1, steps_per_batch))
        x = path[start:stop].to(device).requires_grad_(True)
        out, picked = _output_frame(model(x), video, frame, frames)
        _check_window(out.shape[-2:], row, col, window_size)
        target = detect(out, row, col, window_size)
        (grad,) = torch.autograd.grad(target.sum(), x)
        grad = torch.nan_to_num(grad.detach().cpu().float(), nan=0.0)
        attribution += (grad * derivative[start:stop]).double().sum(dim=0)
        output = out[-1].detach().cpu().float()
    attribution = (attribution / fold).float()

    summed = attribution.sum(dim=-3).abs()  # (h, w) or (T, h, w)
    top = float(summed.max())
    attribution_map = summed / top if top > 0 else summed
    per_frame = summed.reshape(frames, -1).sum(dim=1) if video else summed.sum().view(1)
    total = float(per_frame.sum())
    shares = per_frame / total if total > 0 else torch.full_like(per_frame, 1.0 / frames)
    gini = gini_index(attribution_map)
    assert output is not None
    return LAMResult(
        attribution_map=attribution_map,
        frame_shares=shares,
        diffusion_index=(1.0 - gini) * 100.0,
        gini=gini,
        output=output,
        attribution=attribution,
        row=row,
        col=col,
        window_size=window_size,
        frame=picked,
    )


def _check_window(size: torch.Size, row: int, col: int, window_size: int) -> None:
    height, width = int(size[0]), int(size[1])
    if (
        window_size < 1
        or row < 0
        or col < 0
        or row + window_size > height - 1
        or col + window_size > width - 1
    ):
        raise ValueError(
            f"window {window_size} px at row={row}, col={col} is outside the detector's grid of the "
            f"{height}x{width} output (rows and columns 0..{height - 2}, {width - 2})"
        )


def share_by_distance(frame_shares: Tensor | np.ndarray, centre: int) -> dict[int, float]:
    """Frame shares summed by temporal distance ``|t - centre|`` from the output frame."""
    shares = np.asarray(frame_shares, dtype=np.float64)
    out: dict[int, float] = {}
    for t, share in enumerate(shares):
        out[abs(t - centre)] = out.get(abs(t - centre), 0.0) + float(share)
    return dict(sorted(out.items()))
