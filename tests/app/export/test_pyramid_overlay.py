"""Pyramidal overlays: placed over the slide by physical pixel size, pyramid and provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr
from slidescope.app.analysis.heatmaps import DisplayChoices, display_grid, patch_grid
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.export.provenance import export_metadata
from slidescope.app.export.pyramid_overlay import (
    overlay_pixel,
    overlay_values,
    write_ome_tiff_overlay,
    write_ome_zarr_overlay,
)


def test_overlay_raster_starts_at_the_slide_corner() -> None:
    grid = patch_grid(np.array([[512, 256], [768, 512]]), np.array([1.0, 2.0]), 256)
    values, pixel = overlay_values(grid, (1100, 900))
    assert pixel == 256
    assert values.shape == (4, 5)  # ceil(900 / 256), ceil(1100 / 256)
    assert values[1, 2] == 1.0
    assert values[2, 3] == 2.0
    assert np.isnan(values[0, 0])


def test_grid_off_the_lattice_gets_a_finer_pixel() -> None:
    grid = patch_grid(np.array([[100, 50]]), np.array([1.0]), 200)
    assert overlay_pixel(grid) == 50
    values, _pixel = overlay_values(grid, (400, 400))
    # the patch covers level-0 x 100..300, y 50..250 -> overlay pixels x 2..5, y 1..4
    assert np.isfinite(values[1:5, 2:6]).all()
    assert np.isnan(values[0]).all()
    assert np.isnan(values[:, :2]).all()


@pytest.fixture
def displayed(analysis: SlideAnalysis):
    display = DisplayChoices(normalisation="minmax")
    grid = display_grid(analysis, analysis.attention, display)
    return grid, export_metadata(analysis, display, layer="attention")


def test_ome_tiff_overlay_lies_over_the_slide(
    tmp_path, analysis: SlideAnalysis, displayed
) -> None:
    grid, meta = displayed
    # a large slide so that the overlay has a pyramid
    size = (analysis.identity.width * 20, analysis.identity.height * 20)
    path = write_ome_tiff_overlay(tmp_path / "a.ome.tif", grid, size, (0.5, 0.5), meta)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        base = series.levels[0].asarray()
        assert len(series.levels) > 1
        assert series.levels[1].shape[0] == (base.shape[0] + 1) // 2
        ome = tif.ome_metadata
    assert base.shape == (np.ceil(size[1] / 256), np.ceil(size[0] / 256), 4)
    assert 'PhysicalSizeX="128.0"' in ome
    # the overlay pixel of the attention peak sits where its patch sits in level-0 space
    x, y = analysis.coords[np.argmax(analysis.attention)] // 256
    assert base[y, x, 3] > 0
    assert base[0, 0, 3] == 0
    stored = json.loads(tifffile.xml2dict(ome)["OME"]["Image"]["Description"])
    assert stored["level0_pixel_size"] == 256
    assert stored["slide"]["fingerprint"] == "abc123"


def test_ome_zarr_overlay_scale_and_values(tmp_path, analysis: SlideAnalysis, displayed) -> None:
    grid, meta = displayed
    size = (analysis.identity.width, analysis.identity.height)
    path = write_ome_zarr_overlay(tmp_path / "a.ome.zarr", grid, size, (0.5, 0.5), meta)
    root = zarr.open_group(str(path), mode="r")
    attrs = root.attrs.asdict()
    (multiscale,) = attrs["multiscales"]
    (scale,) = multiscale["datasets"][0]["coordinateTransformations"]
    assert scale["scale"] == [128.0, 128.0]
    # napari centres pixel k at translate + k * scale: the centre of overlay pixel 0 is at
    # level-0 128 px, i.e. 127.5 slide-pixel steps (63.75 um) from the slide's pixel 0 centre
    (translation,) = multiscale["coordinateTransformations"]
    assert translation["translation"] == [63.75, 63.75]
    values = root["0"][...]
    x, y = analysis.coords[np.argmax(analysis.attention)] // 256
    assert values[y, x] == pytest.approx(1.0)
    assert np.isnan(values[0, 0])
    assert attrs["slidescope"]["display"]["normalisation"] == "minmax"
    # written again over an existing one
    write_ome_zarr_overlay(path, grid, size, (0.5, 0.5), meta)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_napari_ome_zarr_places_each_patch_over_its_slide_pixels(tmp_path) -> None:
    reader_module = pytest.importorskip("napari_ome_zarr")
    grid = patch_grid(np.array([[512, 256], [768, 512]]), np.array([1.0, 2.0]), 256)
    path = write_ome_zarr_overlay(
        tmp_path / "o.ome.zarr", grid, (256 * 300, 256 * 200), (0.5, 0.5), {}
    )
    ((data, meta, _),) = reader_module.napari_get_reader(str(path))(str(path))
    assert len(data) > 1  # a pyramid
    scale, translate = np.array(meta["scale"]), np.array(meta["affine"].translate)
    # napari draws data pixel (row 1, col 2) centred at translate + (1, 2) * scale; on a
    # slide opened with scale = mpp that is level-0 (y, x) = (1.5, 2.5) * 256 - 0.5 px: the
    # centre of the patch at (x 512, y 256), whose pixels span 512..767 and 256..511
    centre_um = translate + np.array([1, 2]) * scale
    np.testing.assert_allclose(centre_um / 0.5, [256 + 127.5, 512 + 127.5])
    assert np.asarray(data[0][1, 2]) == 1.0
