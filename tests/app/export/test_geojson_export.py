"""GeoJSON: patch squares with QuPath measurements, contours at a threshold, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from slidescope.app.analysis.heatmaps import DisplayChoices, display_grid
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.export.geojson_export import write_geojson
from slidescope.app.export.provenance import export_metadata


def test_geojson_patches_and_contours(tmp_path, analysis: SlideAnalysis) -> None:
    display = DisplayChoices(normalisation="minmax", threshold=0.5)
    grid = display_grid(analysis, analysis.attention, display)
    path = write_geojson(
        tmp_path / "s.geojson",
        analysis,
        {"attention": analysis.attention, "prob_tumour": analysis.prob("tumour")},
        {"attention": (grid, 0.5)},
        export_metadata(analysis, display),
    )
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    assert data["properties"]["display"]["threshold"] == 0.5
    tiles = [f for f in data["features"] if f["properties"]["objectType"] == "tile"]
    regions = [f for f in data["features"] if f["properties"]["objectType"] == "annotation"]
    assert len(tiles) == analysis.n_patches
    first = tiles[0]
    x, y = analysis.coords[0]
    assert first["geometry"]["coordinates"][0][0] == [x, y]
    assert first["geometry"]["coordinates"][0][2] == [x + 256, y + 256]
    measured = first["properties"]["measurements"]
    assert measured["attention"] == pytest.approx(float(analysis.attention[0]), rel=1e-5)
    assert set(measured) == {"attention", "prob_tumour"}
    # a missing score is null (JSON has no NaN)
    nan_path = write_geojson(
        tmp_path / "n.geojson", analysis, {"x": np.full(analysis.n_patches, np.nan)}, {}, {}
    )
    assert json.loads(nan_path.read_text())["features"][0]["properties"]["measurements"] == {
        "x": None
    }
    # one region around the peak, containing the top patch's centre
    assert len(regions) >= 1
    assert regions[0]["properties"]["classification"]["name"] == "attention >= 0.5"
    ring = np.array(regions[0]["geometry"]["coordinates"][0])
    cx, cy = analysis.coords[np.argmax(analysis.attention)] + 128
    assert ring[:, 0].min() < cx < ring[:, 0].max()
    assert ring[:, 1].min() < cy < ring[:, 1].max()
