"""The plugin's annotations in plain napari: .geojson reader, Shapes writer, the dock."""

from __future__ import annotations

import json

import numpy as np
import pytest
import slidescope.app.ui  # noqa: F401 - guards PySide6's refcounts before any window opens
from slidescope.app.annotations.geojson import read_annotations
from slidescope.plugins._annotations import get_annotation_reader

POLYGON = [[100, 200], [500, 200], [500, 600], [100, 600], [100, 200]]
HOLE = [[200, 300], [300, 300], [300, 400], [200, 400], [200, 300]]


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    for name in ("CACHE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"SLIDESCOPE_{name}", str(tmp_path / name.lower()))


def qupath_file(tmp_path):
    path = tmp_path / "marks.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": "a1",
                        "geometry": {"type": "Polygon", "coordinates": [POLYGON, HOLE]},
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": "Tumor", "color": [200, 0, 0]},
                        },
                    },
                    {
                        "type": "Feature",
                        "id": "a2",
                        "geometry": {"type": "LineString", "coordinates": [[10, 10], [90, 40]]},
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": "Stroma"},
                        },
                    },
                ],
            }
        )
    )
    return path


def test_reader_claims_geojson_only(tmp_path):
    assert get_annotation_reader(str(tmp_path / "a.geojson")) is not None
    assert get_annotation_reader(str(tmp_path / "a.svs")) is None


def test_read_onto_the_slide_and_write_back(make_napari_viewer, aperio_svs, tmp_path):
    viewer = make_napari_viewer()
    (slide,) = viewer.open(str(aperio_svs), plugin="slidescope")
    (shapes,) = viewer.open(str(qupath_file(tmp_path)), plugin="slidescope")
    assert shapes._type_string == "shapes"
    np.testing.assert_allclose(shapes.scale, slide.scale)  # level-0 data, the slide's µm
    assert list(shapes.features["class"]) == ["Tumor", "Tumor", "Stroma"]  # exterior, hole, line
    np.testing.assert_allclose(shapes.data[0][0], [200, 100])  # (y, x)

    out = tmp_path / "out.geojson"
    written = shapes.save(str(out), plugin="slidescope")
    assert written == [str(out)]
    annotations, _ = read_annotations(out)
    by_id = {a.id: a for a in annotations}
    assert by_id["a1"].classification == "Tumor"
    assert by_id["a1"].geometry.area == pytest.approx(400 * 400 - 100 * 100)
    assert by_id["a2"].geometry.geom_type == "LineString"

    # a plain Shapes layer drawn in the slide's µm is written in level-0 pixels
    mpp = slide.scale[-1]
    drawn = viewer.add_shapes(
        [np.array([[0, 0], [0, 100 * mpp], [50 * mpp, 100 * mpp]])], shape_type="polygon"
    )
    out2 = tmp_path / "drawn.geojson"
    drawn.save(str(out2), plugin="slidescope")
    (only,) = list(read_annotations(out2)[0])
    assert only.geometry.bounds == pytest.approx((0, 0, 100, 50))


def test_dock_follows_the_slide_and_saves_annotations(
    make_napari_viewer, aperio_svs, qtbot, tmp_path
):
    from slidescope.plugins._widgets import AnnotationsPanel

    viewer = make_napari_viewer()
    panel = AnnotationsPanel(viewer)
    qtbot.addWidget(panel)
    assert panel.session.view is None
    viewer.open(str(aperio_svs), plugin="slidescope")
    assert panel.session.view is not None
    layer = panel.session.view.layer
    layer.add(np.array([[10.0, 10.0], [10.0, 300.0], [200.0, 300.0]]), shape_type="polygon")
    qtbot.waitUntil(lambda: len(panel.session.annotations) == 1, timeout=5_000)
    panel.session.flush()
    saved = list((tmp_path / "data" / "annotations").glob("cmu_small_region-*.geojson"))
    assert len(saved) == 1
    assert len(read_annotations(saved[0])[0]) == 1
