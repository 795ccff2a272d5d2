"""PNG overlays: the heatmap lands on the right part of the thumbnail, with its provenance."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from slidescope.app.analysis.heatmaps import DisplayChoices, display_grid, patch_grid
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.export.png_overlay import BAR_WIDTH, grid_to_image, write_png_overlay
from slidescope.app.export.provenance import export_metadata


def test_grid_is_sampled_at_thumbnail_pixel_centres() -> None:
    grid = patch_grid(np.array([[100, 0], [0, 100]]), np.array([1.0, 2.0]), 100)
    image = grid_to_image(grid, (400, 200), (4, 2))
    # thumbnail pixel (1, 0) covers level-0 x 100..200, y 0..100 -> the first patch
    assert image[0, 1] == 1.0
    assert image[1, 0] == 2.0
    assert np.isnan(image[0, 0])
    assert np.isnan(image[1, 3])


def test_png_overlay_has_colour_bar_and_metadata(
    tmp_path, analysis: SlideAnalysis, thumbnail
) -> None:
    display = DisplayChoices(normalisation="rank", colormap="viridis", opacity=0.8)
    grid = display_grid(analysis, analysis.attention, display)
    meta = export_metadata(analysis, display, layer="attention", value_range=(0.0, 1.0))
    path = write_png_overlay(
        tmp_path / "a.png",
        thumbnail,
        grid,
        (analysis.identity.width, analysis.identity.height),
        meta,
        colormap="viridis",
        opacity=0.8,
        title="attention",
    )
    with Image.open(path) as png:
        stored = json.loads(png.text["slidescope"])
        pixels = np.asarray(png.convert("RGB"))
    assert stored["slide"]["slide_id"] == "synthetic"
    assert stored["mpp"] == [0.5, 0.5]
    assert stored["display"]["normalisation"] == "rank"
    assert stored["display"]["colormap"] == "viridis"
    h, w = thumbnail.shape[:2]
    assert pixels.shape[0] == h
    assert pixels.shape[1] > w + BAR_WIDTH
    # background (top-left corner: no patch) is the untouched thumbnail; tissue is coloured
    assert (pixels[0, 0] == 230).all()
    x, y = analysis.coords[np.argmax(analysis.attention)] // 16 + 8
    assert not (pixels[y, x] == 230).all()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
