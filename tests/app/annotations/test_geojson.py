"""GeoJSON annotations: QuPath's layout, all the shapes QuPath writes, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from slidescope.app.annotations.geojson import (
    GeoJSONError,
    classification_of,
    feature_collection,
    iter_polygons,
    polygon_feature,
    read_geojson,
    write_geojson,
)

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]
HOLE = [[25, 25], [75, 25], [75, 75], [25, 75], [25, 25]]


def test_polygon_feature_is_qupath_shaped() -> None:
    feature = polygon_feature([SQUARE, HOLE], "Tumor", color=(200, 0, 0))
    assert feature["type"] == "Feature"
    assert feature["geometry"]["type"] == "Polygon"
    exterior = feature["geometry"]["coordinates"][0]
    assert exterior[0] == exterior[-1] == [0, 0]  # closed
    assert feature["properties"]["objectType"] == "annotation"
    assert feature["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}
    assert classification_of(feature) == "Tumor"


def test_round_trip(tmp_path) -> None:
    path = tmp_path / "sub" / "a.geojson"
    features = [polygon_feature([SQUARE], "Tumor"), polygon_feature([SQUARE, HOLE])]
    write_geojson(path, feature_collection(features))
    data = read_geojson(path)
    assert len(data["features"]) == 2
    assert [classification_of(f) for f in data["features"]] == ["Tumor", None]
    rings = list(iter_polygons(data, classification="Tumor"))
    assert len(rings) == 1
    assert np.allclose(rings[0][0][:4], SQUARE)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_reads_what_qupath_writes(tmp_path) -> None:
    # QuPath exports a bare list of features; older versions a plain class string;
    # MultiPolygons for split objects.
    multi = {
        "type": "Feature",
        "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE], [HOLE]]},
        "properties": {"classification": "Stroma", "objectType": "annotation"},
    }
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps([multi, point]))
    data = read_geojson(path)
    assert len(data["features"]) == 2
    assert classification_of(data["features"][0]) == "Stroma"
    assert len(list(iter_polygons(data))) == 2  # the point is not a polygon


def test_bad_files_name_the_file(tmp_path) -> None:
    with pytest.raises(GeoJSONError, match="not found"):
        read_geojson(tmp_path / "missing.geojson")
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json")
    with pytest.raises(GeoJSONError, match=r"broken\.geojson"):
        read_geojson(broken)
    odd = tmp_path / "odd.geojson"
    odd.write_text(json.dumps({"type": "Topology"}))
    with pytest.raises(GeoJSONError, match=r"odd\.geojson.*Topology"):
        read_geojson(odd)


def test_failed_write_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "a.geojson"
    write_geojson(path, [polygon_feature([SQUARE], "Tumor")])
    before = path.read_text()
    with pytest.raises(TypeError):
        write_geojson(path, {"type": "FeatureCollection", "features": [object()]})
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.geojson"]


def test_reading_pauses_the_collector_and_puts_it_back_as_it_was(tmp_path: Path) -> None:
    """Parsing runs without the cyclic collector (each collection walks every object of
    the process: in the window, napari's) and leaves it as the caller had it."""
    import gc

    from slidescope.app.annotations.features import collector_paused, load_json

    path = tmp_path / "a.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    seen = []
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            with collector_paused():
                seen.append(gc.isenabled())
            assert gc.isenabled() is enabled
            load_json(path)
            assert gc.isenabled() is enabled
        gc.enable()
        with pytest.raises(ZeroDivisionError), collector_paused():
            1 / 0  # noqa: B018
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False, False]
