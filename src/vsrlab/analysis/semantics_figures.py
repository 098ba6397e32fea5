"""The figure of :mod:`vsrlab.analysis.semantics`: a 2-D projection of deep features coloured by
degradation and by content side by side, as Fig. 1/5 of Liu et al. 2021."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsrlab.utils.figures import new_figure

MARKERS = "osD^vP*Xh<>p"
METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA"}


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def _scatter(ax: Any, coords: np.ndarray, labels: Sequence[str], title: str) -> None:
    """Scatter ``(n, 2)`` coordinates, one colour and marker per label (legend outside, right)."""
    import matplotlib

    groups = list(dict.fromkeys(labels))
    cmap = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    lab = np.asarray(labels)
    for i, group in enumerate(groups):
        pts = coords[lab == group]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=28,
            color=cmap(i % cmap.N),
            marker=MARKERS[i % len(MARKERS)],
            label=group,
            edgecolors="black",
            linewidths=0.3,
        )
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def plot_semantics(
    coords: np.ndarray,
    labels_by_degradation: Sequence[str],
    labels_by_content: Sequence[str],
    scores: Mapping[str, Any],
    path: str | Path,
    layer: str,
    method: str,
) -> Path:
    """Save the ``(n, 2)`` projection twice, coloured by degradation (left) and by content (right),
    the Calinski-Harabasz (CH) and silhouette (sil) of each grouping in the panel titles and the
    verdict in the figure title; returns the PNG path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = new_figure((11.0, 4.6))
    axes = fig.subplots(1, 2)
    for ax, key, labels in zip(
        axes, ("degradation", "content"), (labels_by_degradation, labels_by_content), strict=True
    ):
        s = scores[key]
        title = f"by {key}: CH {_fmt(s['calinski_harabasz'])}, sil {s['silhouette']:.2f}"
        _scatter(ax, np.asarray(coords), labels, title)
    name = METHOD_NAMES.get(method, method)
    fig.suptitle(f"{name} of '{layer}' features: they cluster by {scores['verdict']}", fontsize=11)
    fig.savefig(path, dpi=110)
    return path
