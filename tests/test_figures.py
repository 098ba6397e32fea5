"""Labelled pictures: every figure vsrlab draws from images has a title, panel captions and, for colour
codes, a colour bar with units or a colour wheel with its scale; recorded in the PNG's text fields."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vsrlab.utils.figures import Panel, panel_figure, png_text
from vsrlab.utils.images import flow_to_rgb


def test_flow_colours_are_white_at_rest_and_saturated_at_the_scale():
    flow = np.array([[[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])  # (1, 4, 2): rest, +x, +y, half
    rgb = flow_to_rgb(flow, 2.0)[0]
    assert rgb[0].tolist() == [255, 255, 255]
    assert rgb[1].tolist() == [255, 0, 0]  # +x: hue 0, full saturation
    assert rgb[2].tolist() == [128, 255, 0]  # +y: hue 1/4
    assert rgb[3].tolist() == [255, 128, 128]  # half the scale: half saturated


def test_panel_figure_records_title_captions_and_colour_scales(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    flow = rng.normal(size=(16, 16, 2))
    heat = rng.random((16, 16)) * 3
    rows = [
        [Panel(image, "bicubic\n24.31 dB"), Panel(flow, "offset 1", "flow", 2.5)],
        [Panel(heat, "group 0", "heatmap", label="diversity (px)")],
    ]
    drawn = panel_figure(rows, "clip, frame 2, step 4", tmp_path / "f.png", row_labels=["a", "b"])
    text = png_text(tmp_path / "f.png")
    assert text["Title"] == "clip, frame 2, step 4"
    assert text["Description"] == "rows: a, b; panels: bicubic\n24.31 dB | offset 1 | group 0"
    assert text["Comment"] == (
        "colour bar: diversity (px); colour wheel: hue = direction, saturation = length, full at 2.5 px"
    )
    with Image.open(tmp_path / "f.png") as saved:
        assert saved.size == (drawn.shape[1], drawn.shape[0])
    assert drawn.dtype == np.uint8 and 300 <= drawn.shape[1] <= 800 and 250 <= drawn.shape[0] <= 600
    assert (drawn < 250).any() and (drawn == 255).any()  # something drawn on a white page


@pytest.mark.parametrize("kind", ["flow", "heatmap"])
def test_a_flat_zero_field_still_draws_with_a_scale(kind, tmp_path):
    zeros = np.zeros((8, 8, 2) if kind == "flow" else (8, 8))
    panel_figure([[Panel(zeros, "zero", kind, label="px")]], "zeros", tmp_path / "z.png")
    assert png_text(tmp_path / "z.png")["Comment"].startswith(
        "colour wheel" if kind == "flow" else "colour bar"
    )
