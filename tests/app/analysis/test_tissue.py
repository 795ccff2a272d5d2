"""Tissue masks: glass, holes, specks, pen and debris; polygons; regions of interest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage.measure import points_in_poly
from slidescope.app.analysis.tissue import (
    TissueMask,
    TissueParams,
    detect_tissue,
    mask_to_polygons,
    pen_marks,
    rasterize_geojson,
    tissue_mask_from_rgb,
    tissue_share_per_patch,
    write_tissue_files,
)
from slidescope.app.annotations.geojson import feature_collection, polygon_feature
from slidescope.app.errors import MissingMppError
from tissue_slides import ArraySlide, he_like_image

MPP = 8.0  # µm/px of the arrays given straight to tissue_mask_from_rgb


def test_tissue_is_found_and_glass_is_not() -> None:
    image = he_like_image(200, 150, blobs=[(60, 70, 40), (150, 80, 35)])
    mask = tissue_mask_from_rgb(image, TissueParams(), MPP)
    assert mask[70, 60]
    assert mask[80, 150]
    assert not mask[5, 5]
    assert not mask[140, 100]
    expected = np.pi * (40**2 + 35**2) / mask.size
    assert mask.mean() == pytest.approx(expected, rel=0.15)


def test_pen_and_debris_are_excluded() -> None:
    image = he_like_image(
        240,
        160,
        blobs=[(80, 80, 50)],
        pen=(150, 20, 230, 140),
        debris=[(200, 30, 6), (80, 80, 4)],
    )
    mask = tissue_mask_from_rgb(image, TissueParams(), MPP)
    assert not mask[80, 190]  # on the pen stroke
    assert not mask[30, 200]  # debris on glass
    assert mask[60, 60]
    assert pen_marks(image)[80, 190]
    # H&E colours are never taken for pen
    assert not pen_marks(np.array([[[225, 150, 190], [110, 60, 150], [60, 25, 100]]])).any()


def test_a_margin_around_pen_goes_with_it() -> None:
    """Tissue a marker stroke crosses is ink and stain mixed: dropped with a margin."""
    image = he_like_image(240, 200, blobs=[(100, 100, 90)], pen=(60, 100, 140, 100))
    params = TissueParams()
    mask = tissue_mask_from_rgb(image, params, MPP)
    margin = round(params.pen_margin_um / MPP)  # mask pixels
    stroke = pen_marks(image)[:, 100]
    top = int(np.argmax(stroke))  # the stroke's first row in column 100
    assert not mask[top - margin + 1, 100]  # within the margin: gone
    assert mask[top - margin - 3, 100]  # beyond it: tissue
    no_margin = tissue_mask_from_rgb(image, TissueParams(pen_margin_um=0), MPP)
    assert no_margin[top - margin + 1, 100]


def test_pen_kept_when_asked() -> None:
    image = he_like_image(240, 160, blobs=[(80, 80, 50)], pen=(150, 20, 230, 140))
    mask = tissue_mask_from_rgb(image, TissueParams(exclude_pen=False), MPP)
    assert mask[80, 190]


def test_small_holes_filled_specks_removed() -> None:
    image = he_like_image(200, 200, blobs=[(100, 100, 70), (185, 15, 2)], density=0)
    image[98:102, 98:102] = 245  # a 4 px (32 µm) hole: filled
    image[40:80, 110:150] = 245  # a 40 px (320 µm) hole: kept
    mask = tissue_mask_from_rgb(image, TissueParams(), MPP)
    assert mask[100, 100]
    assert not mask[60, 130]
    assert not mask[15, 185]  # a 2 px speck


def test_all_glass_gives_empty_mask() -> None:
    image = he_like_image(100, 80)
    assert not tissue_mask_from_rgb(image, TissueParams(), MPP).any()


def test_polygons_in_level0_with_holes() -> None:
    mask = np.zeros((100, 120), dtype=bool)
    mask[10:60, 20:80] = True
    mask[25:40, 40:60] = False  # a hole
    mask[70:90, 90:110] = True
    polygons = mask_to_polygons(mask, downsample=16.0)
    assert len(polygons) == 2
    with_hole = next(p for p in polygons if len(p) == 2)
    exterior, hole = with_hole
    assert np.allclose(exterior[0], exterior[-1])
    assert exterior[:, 0].min() == pytest.approx(20 * 16, abs=16)
    assert exterior[:, 0].max() == pytest.approx(80 * 16, abs=16)
    inside, in_hole = np.array([[30 * 16, 15 * 16]]), np.array([[50 * 16, 32 * 16]])
    assert points_in_poly(inside, exterior).all()
    assert points_in_poly(in_hole, hole).all()
    # rasterising the polygons gives the mask back (up to the outline pixels)
    burnt = rasterize_geojson(
        feature_collection([polygon_feature(p, "Tissue") for p in polygons]), mask.shape, 16.0
    )
    assert (burnt != mask).mean() < 0.03


def _slide_with_tissue() -> ArraySlide:
    # 0.25 µm/px, 4096 px: the mask comes from level 3 (2 µm/px) block-averaged to 8 µm/px;
    # the finer levels are never read, so they are flat views that cost no memory.
    level3 = he_like_image(512, 384, blobs=[(150, 175, 112), (412, 187, 75)], density=0)
    finer = [np.broadcast_to(level3[:1, :1], (3072 // f, 4096 // f, 3)) for f in (1, 2, 4)]
    return ArraySlide([*finer, level3], mpp=0.25)


def test_detect_tissue_on_a_slide_and_write_files(tmp_path) -> None:
    slide = _slide_with_tissue()
    tissue = detect_tissue(slide)
    assert tissue.downsample == pytest.approx(32.0)
    assert tissue.mask.shape == (96, 128)
    assert tissue.slide_size == (4096, 3072)
    assert tissue.mask[1400 // 32, 1200 // 32]
    assert not tissue.mask[5, 5]
    png, geojson = write_tissue_files(tissue, tmp_path, "s1")
    assert png.name == "s1.tissue.png"
    assert geojson.name == "s1.tissue.geojson"
    assert np.array_equal(np.asarray(Image.open(png)) > 0, tissue.mask)
    data = json.loads(geojson.read_text())
    assert data["type"] == "FeatureCollection"
    assert len(data["features"]) == 2
    feature = data["features"][0]
    assert feature["properties"]["classification"]["name"] == "Tissue"
    xs = [x for x, _ in feature["geometry"]["coordinates"][0]]
    assert max(xs) > 1000  # level-0 pixels, not mask pixels
    assert not list(tmp_path.glob(".*tmp"))


def test_roi_intersect_and_replace() -> None:
    slide = _slide_with_tissue()
    box = [[0, 0], [2048, 0], [2048, 3072], [0, 3072], [0, 0]]
    roi = feature_collection([polygon_feature([box], "Region")])
    inside = detect_tissue(slide, roi=roi, roi_mode="intersect")
    assert inside.mask[1400 // 32, 1200 // 32]
    assert not inside.mask[:, 2048 // 32 + 1 :].any()
    replaced = detect_tissue(slide, roi=roi, roi_mode="replace")
    assert replaced.mask[5, 5]  # glass, but inside the ROI
    assert replaced.mask[:, : 2048 // 32 - 1].all()


def test_slide_without_mpp_asks_for_it() -> None:
    slide = ArraySlide([he_like_image(64, 64)], mpp=None)
    with pytest.raises(MissingMppError, match="--slide-mpp"):
        detect_tissue(slide)


def test_tissue_share_per_patch() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :5] = True
    tissue = TissueMask(mask=mask, downsample=10.0, slide_size=(100, 100))
    coords = np.array([[0, 0], [40, 0], [50, 50], [90, 90]])
    share = tissue_share_per_patch(tissue, coords, 20.0)
    assert share.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_real_aperio_slide(aperio_svs) -> None:
    from slidescope.app.slides import open_slide

    with open_slide(aperio_svs) as slide:
        tissue = detect_tissue(slide)
    assert tissue.downsample == pytest.approx(16.0)  # 0.499 µm/px -> ~8 µm/px
    assert 0.25 < tissue.tissue_share < 0.6
    ds = tissue.downsample
    assert tissue.mask[int(2500 / ds), int(1100 / ds)]  # the dermis, bottom middle
    assert not tissue.mask[int(1500 / ds), int(200 / ds)]  # glass on the left
    assert len(tissue.polygons()) >= 1
