"""Regions of interest: read once, refused when they cannot be meant, burnt in linear time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage import draw
from slidescope.app.analysis.roi import RoiError, load_roi, rasterize_polygons


def write_roi(path: Path, rings: list[list[list[float]]]) -> Path:
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def test_scanline_fill_matches_a_point_in_polygon_reference() -> None:
    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radius = rng.uniform(20, 60, 40)
    outer = np.stack([100 + radius * np.cos(angles), 90 + radius * np.sin(angles)], axis=1)
    hole = np.array([[90.0, 80.0], [110.0, 80.0], [110.0, 100.0], [90.0, 100.0]])
    mask = rasterize_polygons([[outer * 4, hole * 4]], (180, 200), 4.0)
    # skimage's polygon takes the pixel centres at integers: shift by half a pixel
    expected = np.zeros((180, 200), bool)
    rr, cc = draw.polygon(outer[:, 1] - 0.5, outer[:, 0] - 0.5, shape=(180, 200))
    expected[rr, cc] = True
    rr, cc = draw.polygon(hole[:, 1] - 0.5, hole[:, 0] - 0.5, shape=(180, 200))
    expected[rr, cc] = False
    # pixels whose centre lies exactly on an edge may go either way
    assert np.mean(mask != expected) < 0.01
    assert mask[90, 100] == expected[90, 100] == False  # noqa: E712  inside the hole
    assert mask.sum() > 800  # the outline is filled, not just drawn


def test_nan_empty_and_missing_rois_name_the_file(tmp_path: Path) -> None:
    nan = write_roi(tmp_path / "nan.geojson", [[[0, 0], [float("nan"), 5], [5, 5], [0, 0]]])
    with pytest.raises(RoiError, match=r"nan\.geojson.*not finite"):
        load_roi(nan)
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(RoiError, match=r"empty\.geojson.*no polygon"):
        load_roi(empty)
    with pytest.raises(RoiError, match=r"missing\.geojson"):
        load_roi(tmp_path / "missing.geojson")


def test_a_roi_outside_the_slide_is_refused(tmp_path: Path) -> None:
    roi = load_roi(
        write_roi(
            tmp_path / "far.geojson", [[[5000, 5000], [6000, 5000], [6000, 6000], [5000, 5000]]]
        )
    )
    roi.check_on((6001, 6001), "slide.tiff")  # overlaps: fine
    with pytest.raises(RoiError, match=r"far\.geojson.*outside slide\.tiff"):
        roi.check_on((2048, 2048), "slide.tiff")


def test_a_roi_is_parsed_once_per_process(tmp_path: Path) -> None:
    path = write_roi(tmp_path / "roi.geojson", [[[0, 0], [10, 0], [10, 10], [0, 0]]])
    assert load_roi(path) is load_roi(path)


def test_extract_refuses_a_roi_that_leaves_no_patch(tmp_path: Path) -> None:
    from slidescope.app.analysis.extract import ExtractConfig, extract_features
    from slidescope.app.jobs import run_job
    from tissue_slides import he_like_image, write_pyramid_tiff

    slide = write_pyramid_tiff(
        tmp_path / "case.tiff", he_like_image(1024, 768, blobs=[(500, 380, 300)]), mpp=0.5
    )
    # a sliver inside the slide, far thinner than a patch
    roi = write_roi(tmp_path / "sliver.geojson", [[[10, 10], [900, 10], [900, 14], [10, 10]]])
    config = ExtractConfig(target_mpp=1.0, patch_px=64, device="cpu", roi=roi)
    with pytest.raises(RoiError, match=r"sliver\.geojson.*leaves no patch"):
        run_job(extract_features(slide, tmp_path / "out", config))
