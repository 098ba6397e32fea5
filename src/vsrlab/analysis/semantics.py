"""Degradation "semantics" of deep SR features (Liu et al., "Discovering 'Semantics' in
Super-Resolution Networks", 2021, arXiv:2108.00406).

Liu et al. find that deep features of SR networks cluster by the *degradation* of the input (blur,
noise, JPEG, ...) rather than by its image *content*: they pool a layer's feature maps, project
them in 2-D with t-SNE and score the clustering with the Calinski-Harabasz index. No official code
exists, so the layer, the pooling and the projection are options here. For every content x
degradation pair the LR input is made (:func:`apply_degradation`), fed to the network, the hooked
layer's output pooled to a vector (:func:`capture_features`), then the vectors are projected
(:func:`project`) and scored by both groupings (:func:`clustering_scores`); :func:`run_semantics`
does all of it and writes ``semantics.png`` and ``semantics.json``.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from vsrlab.archs.contract import declared_temporal
from vsrlab.data.degradations import bicubic_downsample, blur_downsample, gaussian_kernel_1d
from vsrlab.ops.windows import window_indices
from vsrlab.utils.images import frames_to_tensor

Pooling = Literal["mean", "max", "meanstd", "flatten"]
Calls = Literal["mean", "centre"]

# name -> its parameters and their defaults (None: BD's sigma is 0.4 * scale, blur's kernel 6 sigma)
KNOWN_DEGRADATIONS: dict[str, dict[str, Any]] = {
    "BI": {},
    "BD": {"sigma": None, "kernel_size": 13},
    "noise": {"sigma": 10.0, "seed": 0},
    "jpeg": {"quality": 20},
    "blur": {"sigma": 2.0, "kernel_size": None},
}
DEFAULT_DEGRADATIONS: tuple[dict[str, Any], ...] = (
    {"name": "BI"},
    {"name": "BD", "sigma": 1.6},
    {"name": "noise", "sigma": 10.0, "seed": 0},
    {"name": "jpeg", "quality": 20},
    {"name": "blur", "sigma": 1.0},
    {"name": "blur", "sigma": 2.5},
)


@dataclass(frozen=True)
class DegradationSpec:
    """One degradation: its ``name`` (a key of :data:`KNOWN_DEGRADATIONS`), its parameters (the
    defaults filled in) and a ``label`` for plots (``'noise sigma=10'`` unless given)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params, "label": self.label}


def degradation_spec(config: Mapping[str, Any]) -> DegradationSpec:
    """A :class:`DegradationSpec` from ``{name: ..., <params>..., label: ...?}``.

    Raises:
        ValueError: unknown name or parameter (naming it and the known ones).
    """
    config = dict(config)
    name, label = config.pop("name", None), config.pop("label", None)
    if name not in KNOWN_DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; known: {sorted(KNOWN_DEGRADATIONS)}")
    defaults = KNOWN_DEGRADATIONS[name]
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"degradation {name!r} has no parameter(s) {unknown}; known: {sorted(defaults)}")
    params = {**defaults, **config}
    shown = " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items() if k != "seed"
    )
    return DegradationSpec(name, params, label or (f"{name} {shown}" if shown else name))


def degradation_set(configs: Sequence[Mapping[str, Any]] = DEFAULT_DEGRADATIONS) -> list[DegradationSpec]:
    """The specs of a list of config dicts (e.g. a Hydra list); labels must be unique."""
    specs = [degradation_spec(c) for c in configs]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"degradation labels must be unique, got {labels}")
    return specs


def _gaussian_blur(frames: np.ndarray, sigma: float, kernel_size: int | None) -> np.ndarray:
    """Isotropic Gaussian blur of ``(N, H, W, C)`` uint8 frames (reflect-101), rounded to uint8."""
    radius = kernel_size // 2 if kernel_size else max(1, math.ceil(3 * sigma))
    g = gaussian_kernel_1d(sigma, radius)
    out = [
        cv2.sepFilter2D(f.astype(np.float64), cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT_101)
        for f in frames
    ]
    return np.clip(np.floor(np.stack(out).reshape(frames.shape) + 0.5), 0, 255).astype(np.uint8)


def _jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of ``(N, h, w, 3)`` RGB uint8 frames through OpenCV (4:2:0 chroma, its default)."""
    out = []
    for f in frames:
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError("cv2.imencode failed to write a JPEG")
        out.append(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return np.stack(out)


def apply_degradation(
    hr_frames: np.ndarray, spec: DegradationSpec | Mapping[str, Any], scale: int, seed_offset: int = 0
) -> np.ndarray:
    """LR frames of HR ``(T, H, W, 3)`` or ``(H, W, 3)`` uint8: ``(T, H/s, W/s, 3)`` or ``(H/s, W/s, 3)``.

    ``BI``: MATLAB bicubic; ``BD``: :func:`blur_downsample`; ``noise``: BI, then Gaussian noise of
    ``sigma`` grey levels (0-255) drawn from ``default_rng(seed + seed_offset)``, rounded and clipped;
    ``jpeg``: BI, then a JPEG round trip at ``quality`` per frame; ``blur``: a Gaussian blur of
    ``sigma`` HR pixels (kernel ``2 * ceil(3 sigma) + 1`` unless given), rounded, then BI.
    """
    if not isinstance(spec, DegradationSpec):
        spec = degradation_spec(spec)
    p = spec.params
    frames = np.asarray(hr_frames)
    flat = frames.reshape(-1, *frames.shape[-3:])
    if spec.name == "BD":
        lr = blur_downsample(flat, scale, p["sigma"], p["kernel_size"])
    elif spec.name == "blur":
        lr = bicubic_downsample(_gaussian_blur(flat, p["sigma"], p["kernel_size"]), scale)
    else:
        lr = bicubic_downsample(flat, scale)
        if spec.name == "noise":
            rng = np.random.default_rng(int(p["seed"]) + seed_offset)
            noisy = lr.astype(np.float64) + rng.normal(0.0, float(p["sigma"]), size=lr.shape)
            lr = np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8)
        elif spec.name == "jpeg":
            lr = _jpeg(lr, int(p["quality"]))
    return lr.reshape(*frames.shape[:-3], *lr.shape[-3:])


def _first_tensor(out: Any) -> Tensor | None:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            if (found := _first_tensor(item)) is not None:
                return found
    return None


def pool_output(out: Tensor, pooling: Pooling = "mean", crop: int = 8) -> Tensor:
    """Pool a layer output to one vector per item: ``(N, C)`` -> ``(N, D)``.

    Layouts: 2-D ``(N, C)``; 3-D ``(N, L, C)`` tokens (transformer layout); 4-D ``(N, C, H, W)``;
    5-D ``(N, T, C, H, W)`` is taken as ``N*T`` items. ``'mean'`` / ``'max'``: per channel over the
    positions (D = C); ``'meanstd'``: mean then population std per channel (D = 2C); ``'flatten'``:
    the central ``crop x crop`` window flattened (D = C * crop^2; tokens: the central ``crop^2``).
    """
    x = out.detach().float()
    if x.ndim == 5:
        x = x.flatten(0, 1)
    if x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim == 3:
        x = x.transpose(1, 2)  # (N, C, L)
    elif x.ndim != 4:
        raise ValueError(f"cannot pool a layer output of shape {tuple(out.shape)}")
    if pooling == "flatten":
        sizes = x.shape[2:]
        if any(s < crop for s in sizes):
            raise ValueError(f"flatten pooling crops {crop} per side; the layer output is {tuple(sizes)}")
        for d, s in enumerate(sizes, start=2):
            x = x.narrow(d, (s - crop) // 2, crop)
        return x.flatten(1)
    x = x.flatten(2)
    if pooling == "mean":
        return x.mean(2)
    if pooling == "max":
        return x.amax(2)
    if pooling == "meanstd":
        return torch.cat([x.mean(2), x.std(2, correction=0)], dim=1)
    raise ValueError(f"pooling must be one of 'mean', 'max', 'meanstd', 'flatten', got {pooling!r}")


def capture_features(
    net: nn.Module, lq: Tensor, layer: str, pooling: Pooling = "mean", *, calls: Calls = "mean", crop: int = 8
) -> Tensor:
    """The pooled output of ``net.get_submodule(layer)`` for one input -> ``(D,)`` float32 on the CPU.

    ``lq`` is one sample with a batch dimension of 1 (``(1, T, C, h, w)`` or ``(1, C, h, w)``).
    The hooked output (its first tensor if a tuple) is pooled per item (:func:`pool_output`). The
    items are the output's leading dimension (e.g. the ``T`` frames of a per-frame module run on
    ``B*T`` frames at once) in every call, in call order (a module called per frame or per recurrent
    step). ``calls='mean'`` averages the vectors over all items; ``'centre'`` takes the middle item:
    the centre frame when the frames come in order, or in reverse as BasicVSR's backward branch.
    Runs under ``torch.no_grad``; the caller chooses train / eval mode.

    Raises:
        ValueError: no such layer (naming it and a few valid names), or a bad pooling.
    """
    if calls not in ("mean", "centre"):
        raise ValueError(f"calls must be 'mean' or 'centre', got {calls!r}")
    try:
        module = net.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in net.named_modules() if n]
        near = difflib.get_close_matches(layer, names, n=5, cutoff=0.4) or names[:8]
        raise ValueError(
            f"{type(net).__name__} has no submodule {layer!r}; valid names include {near}"
        ) from None
    if lq.shape[0] != 1:
        raise ValueError(f"capture_features takes one sample (batch 1), got a batch of {lq.shape[0]}")
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        if tensor is not None:
            captured.append(pool_output(tensor, pooling, crop).cpu())

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            net(lq)
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"layer {layer!r} was not called (or returned no tensor) during the forward pass")
    items = torch.cat(captured)
    return items.mean(0) if calls == "mean" else items[len(items) // 2]


def project(
    features: np.ndarray,
    method: Literal["tsne", "pca"] = "tsne",
    seed: int = 0,
    perplexity: float | None = None,
) -> np.ndarray:
    """``(n, D)`` features -> ``(n, 2)`` coordinates: standardised per dimension, then PCA or t-SNE
    (PCA init, ``random_state=seed``; perplexity ``min(30, (n - 1) / 4)`` unless given, always
    below ``n``: t-SNE's neighbourhoods span ``3 * perplexity`` points, so a few groups stay apart)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        n = x.shape[0]
        p = min(30.0, (n - 1) / 4) if perplexity is None else perplexity
        p = float(min(max(p, 1.0), n - 1))
        return TSNE(2, perplexity=p, init="pca", random_state=seed).fit_transform(x)
    raise ValueError(f"method must be 'tsne' or 'pca', got {method!r}")


def _scores(x: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import calinski_harabasz_score, silhouette_score

    groups = sorted(set(labels))
    if not 2 <= len(groups) < len(labels):
        raise ValueError(
            f"clustering scores need 2 to n-1 groups; got {len(groups)} for {len(labels)} samples"
        )
    lab = np.asarray(labels)
    within = sum(((x[lab == g] - x[lab == g].mean(0)) ** 2).sum() for g in groups)
    # sklearn returns 1.0 for zero within-group dispersion; perfectly tight groups score +inf here
    ch = math.inf if within == 0 and np.ptp(x, axis=0).any() else calinski_harabasz_score(x, lab)
    return {"calinski_harabasz": float(ch), "silhouette": float(silhouette_score(x, lab))}


def clustering_scores(
    features: np.ndarray, labels_by_degradation: Sequence[str], labels_by_content: Sequence[str]
) -> dict[str, Any]:
    """Calinski-Harabasz and silhouette of the ``(n, D)`` features (not a projection) grouped by
    degradation and by content; ``verdict`` is the grouping with the higher Calinski-Harabasz."""
    x = np.asarray(features, dtype=np.float64)
    by_deg = _scores(x, [str(v) for v in labels_by_degradation])
    by_content = _scores(x, [str(v) for v in labels_by_content])
    verdict = "degradation" if by_deg["calinski_harabasz"] > by_content["calinski_harabasz"] else "content"
    return {"degradation": by_deg, "content": by_content, "verdict": verdict}


def _window(num_frames: int, net: nn.Module) -> list[int]:
    """Indices of the frames a network sees from a clip of ``num_frames``: the centred window of a
    window network (edge frames repeated if the clip is shorter), all of them otherwise."""
    if declared_temporal(net) != "window":
        return list(range(num_frames))
    return window_indices(num_frames // 2, num_frames, int(net.num_frame), "replicate")


def run_semantics(
    net: nn.Module,
    hr_clips: Sequence[tuple[str, np.ndarray]],
    out_dir: str | Path,
    *,
    scale: int,
    layer: str,
    pooling: Pooling = "mean",
    degradations: Sequence[Mapping[str, Any]] = DEFAULT_DEGRADATIONS,
    method: Literal["tsne", "pca"] = "tsne",
    seed: int = 0,
    calls: Calls = "mean",
    crop: int = 8,
) -> dict[str, Any]:
    """Features of every clip x degradation at ``layer``, projected, scored and plotted.

    ``hr_clips``: ``(content name, (T, H, W, 3) uint8)`` pairs (clips of one name are one content
    group, e.g. several crops of one image). A window network (``temporal ==
    'window'``) gets the centred ``num_frame`` frames, a recurrent one the whole clip, any other
    module the centre frame ``(1, C, h, w)``; all degraded alike (noise seeds offset by the clip
    index, so each content has its own noise). The network runs in eval mode without gradients on
    its own device. Writes ``semantics.png`` and ``semantics.json`` into ``out_dir``; returns the
    JSON's dict with ``figures`` (the PNG paths).
    """
    from vsrlab.analysis.semantics_figures import plot_semantics

    specs = degradation_set(degradations)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    param = next(iter(net.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    video = declared_temporal(net) is not None  # else an image network
    was_training = net.training
    net.eval()
    feats, deg_labels, content_labels = [], [], []
    try:
        for i, (name, clip) in enumerate(hr_clips):
            clip = np.asarray(clip)
            clip = clip[None] if clip.ndim == 3 else clip
            frames = clip[_window(len(clip), net)]
            for spec in specs:
                lr = apply_degradation(frames, spec, scale, seed_offset=i)
                lq = frames_to_tensor(lr if video else lr[len(lr) // 2])[None].to(device)
                feats.append(capture_features(net, lq, layer, pooling, calls=calls, crop=crop).numpy())
                deg_labels.append(spec.label)
                content_labels.append(str(name))
    finally:
        net.train(was_training)
    x = np.stack(feats).astype(np.float64)
    scores = clustering_scores(x, deg_labels, content_labels)
    coords = project(x, method, seed)
    png = plot_semantics(coords, deg_labels, content_labels, scores, out_dir / "semantics.png", layer, method)
    result: dict[str, Any] = {
        "n_samples": len(x),
        "feature_dim": int(x.shape[1]),
        "network": type(net).__name__,
        "layer": layer,
        "pooling": pooling,
        "calls": calls,
        "method": method,
        "seed": seed,
        "scale": scale,
        "degradations": [s.as_dict() for s in specs],
        "contents": list(dict.fromkeys(content_labels)),
        "scores": {k: scores[k] for k in ("degradation", "content")},
        "verdict": scores["verdict"],
        "points": [
            {"x": float(px), "y": float(py), "degradation": d, "content": c}
            for (px, py), d, c in zip(coords, deg_labels, content_labels, strict=True)
        ],
        "figures": [str(png)],
    }
    (out_dir / "semantics.json").write_text(json.dumps(result, indent=2))
    return result
