"""vsrlab.analysis.semantics: degradation semantics of deep features (Liu et al. 2021)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vsrlab.analysis.semantics import (
    DEFAULT_DEGRADATIONS,
    apply_degradation,
    capture_features,
    clustering_scores,
    degradation_set,
    project,
    run_semantics,
)
from vsrlab.archs import SlidingWindowVSR
from vsrlab.data.degradations import bicubic_downsample, blur_downsample
from vsrlab.data.synthetic import load_image

IMAGES = ("astronaut", "coffee", "chelsea", "brick", "camera")


def hr_clips(names=IMAGES, size=32, frames=3, crops=1):
    """``(name, (frames, size, size, 3))`` clips: crops of scikit-image images shifted by 1 px per frame."""
    clips = []
    for name in names:
        img = load_image(name)
        for k in range(crops):
            y, x = img.shape[0] // 3 + 40 * k, img.shape[1] // 3 + 24 * k
            clip = np.stack([img[y + t : y + t + size, x + t : x + t + size] for t in range(frames)])
            clips.append((f"{name}{k}" if crops > 1 else name, clip))
    return clips


class HighPassNet(nn.Module):
    """An image network whose ``energy`` layer outputs the log of the per-pixel Laplacian energy of its
    input: its features measure the input's high frequencies, i.e. the degradation (blur vs noise)."""

    def __init__(self) -> None:
        super().__init__()
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("lap", lap.expand(3, 1, 3, 3).clone())
        self.energy = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.lap, groups=3)
        self.energy(torch.log(high**2 + 1e-4))
        return F.interpolate(x, scale_factor=2)


class MeanColourNet(nn.Module):
    """An image network whose ``colour`` layer is its input: mean-pooled, the features are the mean
    colour, i.e. the content."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.colour(x), scale_factor=2)


BLUR_VS_NOISE = [{"name": "blur", "sigma": 2.0}, {"name": "noise", "sigma": 20.0, "seed": 1}]


def test_toy_network_whose_features_are_the_degradation(tmp_path):
    clips = hr_clips(crops=2, frames=1)
    out = run_semantics(
        HighPassNet(), clips, tmp_path, scale=2, layer="energy", degradations=BLUR_VS_NOISE, method="pca"
    )
    deg, content = out["scores"]["degradation"], out["scores"]["content"]
    print(deg, content)
    assert out["verdict"] == "degradation"
    assert deg["calinski_harabasz"] > 20 * content["calinski_harabasz"]
    assert deg["silhouette"] > 0.5 > content["silhouette"]


def test_toy_network_whose_features_are_the_content(tmp_path):
    clips = hr_clips(crops=2, frames=1)
    out = run_semantics(
        MeanColourNet(), clips, tmp_path, scale=2, layer="colour", degradations=BLUR_VS_NOISE, method="pca"
    )
    deg, content = out["scores"]["degradation"], out["scores"]["content"]
    print(deg, content)
    assert out["verdict"] == "content"
    assert content["calinski_harabasz"] > 20 * deg["calinski_harabasz"]
    assert content["silhouette"] > 0.5 > deg["silhouette"]


def test_degradation_set_defaults_and_errors():
    specs = degradation_set()
    assert [s.name for s in specs] == ["BI", "BD", "noise", "jpeg", "blur", "blur"]
    assert [s.label for s in specs] == [
        "BI",
        "BD sigma=1.6",
        "noise sigma=10",
        "jpeg quality=20",
        "blur sigma=1",
        "blur sigma=2.5",
    ]
    assert specs[1].params == {"sigma": 1.6, "kernel_size": 13}
    assert len(specs) == len(DEFAULT_DEGRADATIONS)
    with pytest.raises(ValueError, match=r"'sharpen'.*BI"):
        degradation_set([{"name": "sharpen"}])
    with pytest.raises(ValueError, match=r"'quallity'"):
        degradation_set([{"name": "jpeg", "quallity": 20}])
    with pytest.raises(ValueError, match="unique"):
        degradation_set([{"name": "BI"}, {"name": "BI"}])
    with pytest.raises(ValueError, match=r"'sharpen'"):
        apply_degradation(np.zeros((8, 8, 3), np.uint8), {"name": "sharpen"}, 2)


def test_apply_degradation_bi_bd_blur():
    clip = hr_clips(names=("astronaut",), size=16, frames=2)[0][1]
    np.testing.assert_array_equal(apply_degradation(clip, {"name": "BI"}, 2), bicubic_downsample(clip, 2))
    np.testing.assert_array_equal(
        apply_degradation(clip[0], {"name": "BI"}, 2), bicubic_downsample(clip[0], 2)
    )
    bd = apply_degradation(clip, {"name": "BD", "sigma": 0.8}, 2)
    np.testing.assert_array_equal(bd, blur_downsample(clip, 2, 0.8, 13))
    assert bd.shape == (2, 8, 8, 3)

    def high_pass(lr):
        return np.abs(np.diff(lr.astype(float), axis=-2)).mean()

    bi = high_pass(bicubic_downsample(clip, 2))
    blur1 = high_pass(apply_degradation(clip, {"name": "blur", "sigma": 1.0}, 2))
    blur3 = high_pass(apply_degradation(clip, {"name": "blur", "sigma": 3.0}, 2))
    assert bi > 1.2 * blur1 > 1.2 * blur3  # each blur level removes more detail


def test_apply_degradation_noise():
    grey = np.full((2, 64, 64, 3), 128, np.uint8)  # no clipping: the noise is the difference from 128
    spec = {"name": "noise", "sigma": 10.0, "seed": 3}
    a, b = apply_degradation(grey, spec, 2), apply_degradation(grey, spec, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, apply_degradation(grey, {**spec, "seed": 4}, 2))
    assert not np.array_equal(a, apply_degradation(grey, spec, 2, seed_offset=1))
    noise = a.astype(np.float64) - 128.0
    assert a.min() > 0 and a.max() < 255
    assert abs(noise.mean()) < 0.5
    assert abs(noise.std() - np.sqrt(10.0**2 + 1 / 12)) < 0.3  # 6144 draws; rounding adds 1/12


def test_apply_degradation_jpeg():
    grey = hr_clips(names=("camera",), size=64, frames=1)[0][1]
    colour = hr_clips(names=("astronaut",), size=64, frames=1)[0][1]
    for clip, q100_max in ((grey, 2), (colour, 10)):  # 4:2:0 chroma costs colour edges a few levels
        bi = bicubic_downsample(clip, 2).astype(int)
        q100 = np.abs(apply_degradation(clip, {"name": "jpeg", "quality": 100}, 2) - bi)
        q10 = np.abs(apply_degradation(clip, {"name": "jpeg", "quality": 10}, 2) - bi)
        assert q100.max() <= q100_max and q100.mean() < 1.0
        assert q10.mean() > 4 * q100.mean() and q10.mean() > 3.0


def probe_net() -> nn.Sequential:
    return nn.Sequential(nn.Identity(), nn.Sequential(nn.Identity()), nn.Conv2d(3, 3, 1))


def test_capture_features_pooling():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 12, 10)
    net = probe_net()
    mean = capture_features(net, x, "1.0", "mean")
    torch.testing.assert_close(mean, x.mean((0, 2, 3)))
    torch.testing.assert_close(capture_features(net, x, "0", "max"), x.amax((0, 2, 3)))
    meanstd = capture_features(net, x, "1.0", "meanstd")
    assert meanstd.shape == (6,)
    torch.testing.assert_close(meanstd[3:], x.std((2, 3), correction=0)[0])
    flat = capture_features(net, x, "1", "flatten", crop=4)
    torch.testing.assert_close(flat, x[0, :, 4:8, 3:7].flatten())
    assert capture_features(net, x, "2", "meanstd").dtype == torch.float32
    with pytest.raises(ValueError, match="crops 16"):
        capture_features(net, x, "1", "flatten", crop=16)
    with pytest.raises(ValueError, match=r"'1\.1'.*'1\.0'"):
        capture_features(net, x, "1.1")
    with pytest.raises(ValueError, match="batch 1"):
        capture_features(net, torch.rand(2, 3, 4, 4), "0")


class PerFrameNet(nn.Module):
    """Calls ``probe`` once per frame of ``(1, T, C, h, w)``, then ``merged`` on all ``T`` frames at once."""

    temporal = "recurrent"

    def __init__(self) -> None:
        super().__init__()
        self.probe = nn.Identity()
        self.merged = nn.Identity()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        frames = [self.probe(x[:, t]) for t in range(x.shape[1])]
        self.merged(x)  # a 5-D output: its T frames are items
        return torch.stack(frames, 1)


def test_capture_features_calls():
    x = torch.rand(1, 5, 3, 6, 6)
    per_frame_means = x.mean((3, 4))[0]  # (T, C)
    for layer in ("probe", "merged"):
        torch.testing.assert_close(capture_features(PerFrameNet(), x, layer), per_frame_means.mean(0))
        torch.testing.assert_close(
            capture_features(PerFrameNet(), x, layer, calls="centre"), per_frame_means[2]
        )


def test_project():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (5, 6)), rng.normal(8, 1, (5, 6))])
    for method in ("pca", "tsne"):
        xy = project(x, method, seed=1)
        assert xy.shape == (10, 2) and np.isfinite(xy).all()
        np.testing.assert_allclose(project(x, method, seed=1), xy)
        # the two blobs stay apart in 2-D
        gap = np.linalg.norm(xy[:5].mean(0) - xy[5:].mean(0))
        assert gap > 2 * max(xy[:5].std(0).max(), xy[5:].std(0).max())
    assert project(x[:, :1], "pca").shape == (10, 2)  # a single feature is padded
    with pytest.raises(ValueError, match="umap"):
        project(x, "umap")


def test_clustering_scores():
    rng = np.random.default_rng(0)
    deg = ["blur", "noise"] * 6
    content = [f"img{i // 2}" for i in range(12)]  # 6 images x 2 degradations
    x = np.array([[0.0, 0.0] if d == "blur" else [5.0, 5.0] for d in deg]) + rng.normal(0, 0.1, (12, 2))
    s = clustering_scores(x, deg, content)
    assert s["verdict"] == "degradation"
    assert s["degradation"]["calinski_harabasz"] > 1000 and s["degradation"]["silhouette"] > 0.9
    assert s["content"]["calinski_harabasz"] < 1 and s["content"]["silhouette"] < 0
    assert clustering_scores(x, content, deg)["verdict"] == "content"
    exact = np.array([[0.0], [1.0]] * 6)
    assert clustering_scores(exact, deg, content)["degradation"]["calinski_harabasz"] == float("inf")
    with pytest.raises(ValueError, match="2 to n-1 groups"):
        clustering_scores(x, deg, ["one"] * 12)


def test_network_inputs(tmp_path):
    """A window net gets its centred window, a recurrent net the clip, an image net the centre frame."""
    clip = hr_clips(names=("coffee", "chelsea"), size=16, frames=5)
    recurrent = PerFrameNet()
    run_semantics(recurrent, clip, tmp_path, scale=2, layer="probe", degradations=BLUR_VS_NOISE, method="pca")
    assert set(recurrent.seen) == {(1, 5, 3, 8, 8)}

    class Window(PerFrameNet):
        temporal = "window"
        num_frame = 3

    window = Window()
    out = run_semantics(
        window,
        clip,
        tmp_path,
        scale=2,
        layer="probe",
        degradations=[{"name": "BI"}, {"name": "BD"}],
        method="pca",
        calls="centre",
    )
    assert set(window.seen) == {(1, 3, 3, 8, 8)}
    assert out["feature_dim"] == 3
    image = MeanColourNet()
    seen = []
    image.colour.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    run_semantics(image, clip, tmp_path, scale=2, layer="colour", degradations=BLUR_VS_NOISE, method="pca")
    assert set(seen) == {(1, 3, 8, 8)}


def test_run_semantics_sliding_window_vsr(tmp_path):
    torch.manual_seed(0)
    net = SlidingWindowVSR(num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1, upscale=2)
    net.train()
    degradations = [{"name": "BI"}, {"name": "noise", "sigma": 15.0}, {"name": "blur", "sigma": 2.0}]
    out = run_semantics(
        net,
        hr_clips(names=IMAGES[:3]),
        tmp_path / "sem",
        scale=2,
        layer="feature_extraction",
        pooling="meanstd",
        degradations=degradations,
        method="pca",
    )
    assert net.training  # the mode is restored
    assert out["figures"] == [str(tmp_path / "sem" / "semantics.png")]
    assert (tmp_path / "sem" / "semantics.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "sem" / "semantics.json").read_text())
    assert saved == out
    assert saved["n_samples"] == 9 and saved["feature_dim"] == 16 and saved["network"] == "SlidingWindowVSR"
    assert (
        saved["layer"] == "feature_extraction" and saved["pooling"] == "meanstd" and saved["method"] == "pca"
    )
    assert [d["label"] for d in saved["degradations"]] == ["BI", "noise sigma=15", "blur sigma=2"]
    assert saved["contents"] == list(IMAGES[:3])
    assert len(saved["points"]) == 9
    assert {p["degradation"] for p in saved["points"]} == {"BI", "noise sigma=15", "blur sigma=2"}
    for grouping in ("degradation", "content"):
        scores = saved["scores"][grouping]
        assert scores["calinski_harabasz"] > 0 and -1 <= scores["silhouette"] <= 1
    ch = {g: saved["scores"][g]["calinski_harabasz"] for g in ("degradation", "content")}
    assert saved["verdict"] == max(ch, key=ch.get)
