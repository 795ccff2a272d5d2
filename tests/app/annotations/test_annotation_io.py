"""QuPath GeoJSON in and out: the round trip, and bad files repaired or refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from slidescope.app.annotations.geojson import (
    GeoJSONError,
    read_annotations,
    write_annotations,
)
from slidescope.app.annotations.model import Annotation, AnnotationSet
from slidescope.models.files import backup_path

SQUARE = [[100, 100], [400, 100], [400, 400], [100, 400], [100, 100]]
HOLE = [[200, 200], [300, 200], [300, 300], [200, 300], [200, 200]]


def qupath_export() -> dict:
    """An export shaped as QuPath's documentation describes it (v0.4+)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "6a3d1e1e-9d8b-4e3b-8a8e-1f0b2c3d4e5f",
                "geometry": {"type": "Polygon", "coordinates": [SQUARE, HOLE]},
                "properties": {
                    "objectType": "annotation",
                    "name": "biopsy 1",
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                    "isLocked": True,
                    "measurements": {"Area µm^2": 1.5},
                },
            },
            {
                "type": "Feature",
                "id": "7b4e2f2f-0e9c-4f4c-9b9f-2a1c3d4e5f60",
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[500, 500], [600, 500], [600, 600], [500, 600], [500, 500]]],
                        [[[700, 500], [800, 500], [800, 600], [700, 600], [700, 500]]],
                    ],
                },
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "My stroma", "colorRGB": -16711936},
                },
            },
            {
                "type": "Feature",
                "id": "8c5f3a3a-1fad-405d-8caa-3b2d4e5f6071",
                "geometry": {"type": "LineString", "coordinates": [[10, 10], [50, 80]]},
                "properties": {"objectType": "annotation"},
            },
            {
                "type": "Feature",
                "id": "9d6a4b4b-20be-416e-9dbb-4c3e5f607182",
                "geometry": {"type": "MultiPoint", "coordinates": [[20, 20], [30, 30]]},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "Immune cells", "color": [160, 90, 160]},
                },
            },
        ],
    }


def test_qupath_round_trip_keeps_geometry_and_classes(tmp_path) -> None:
    source = tmp_path / "qupath.geojson"
    source.write_text(json.dumps(qupath_export()))
    annotations, report = read_annotations(source, slide_dimensions=(2000, 2000))
    assert report.read == 4
    assert not report.changed_anything
    assert report.classes["My stroma"] == (0, 255, 0)
    first = annotations["6a3d1e1e-9d8b-4e3b-8a8e-1f0b2c3d4e5f"]
    assert first.classification == "Tumor"
    assert first.name == "biopsy 1"
    assert first.locked
    assert first.geometry.area == 300 * 300 - 100 * 100
    assert [a.kind for a in annotations] == ["polygon", "polygon", "line", "point"]

    out = tmp_path / "out.geojson"
    write_annotations(out, annotations)
    written = json.loads(out.read_text())
    assert written["type"] == "FeatureCollection"
    original = qupath_export()["features"]
    for before, after in zip(original, written["features"]):
        assert after["id"] == before["id"]
        assert after["properties"]["objectType"] == "annotation"
        assert after["properties"].get("classification", {}).get("name") == (
            before["properties"].get("classification", {}).get("name")
        )
        assert shapely.geometry.shape(after["geometry"]).equals_exact(
            shapely.geometry.shape(before["geometry"]), 1e-9
        )
    assert written["features"][0]["properties"]["classification"]["color"] == [200, 0, 0]
    assert written["features"][0]["properties"]["isLocked"] is True
    assert written["features"][0]["properties"]["measurements"] == {"Area µm^2": 1.5}
    again, _ = read_annotations(out)
    assert [a.classification for a in again] == [a.classification for a in annotations]


@pytest.mark.parametrize("shape", ["list", "feature"])
def test_reads_a_list_of_features_and_a_single_feature(tmp_path, shape) -> None:
    features = qupath_export()["features"]
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps(features if shape == "list" else features[0]))
    annotations, _ = read_annotations(path)
    assert len(annotations) == (4 if shape == "list" else 1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", r"bad\.geojson: not valid JSON \(line 1"),
        ("", r"bad\.geojson: the file is empty"),
        ('{"type": "Topology"}', r"bad\.geojson: .*Topology"),
        ("42", r"bad\.geojson: not GeoJSON"),
    ],
)
def test_unreadable_files_name_the_file_and_the_reason(tmp_path, text, match) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(text)
    with pytest.raises(GeoJSONError, match=match):
        read_annotations(path)


def test_bad_features_are_repaired_or_left_out_with_counts(tmp_path) -> None:
    bowtie = [[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]  # self-intersecting
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [bowtie]},
            "properties": {},
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[0, 0], [float("nan"), 1], [1, 1], [0, 0]]],
            },
            "properties": {},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [1e12, 5]},
            "properties": {},
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[900, 900], [1500, 900], [1500, 1500], [900, 900]]],
            },
            "properties": {},
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[5000, 5000], [5100, 5000], [5100, 5100], [5000, 5000]]],
            },
            "properties": {},
        },
        {"type": "Feature", "geometry": None, "properties": {}},
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": "oops"},
            "properties": {},
        },
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}).replace("NaN", "NaN")
    )
    annotations, report = read_annotations(path, slide_dimensions=(1000, 1000))
    assert report.repaired == 1
    assert report.clipped == 1
    assert report.outside == 1
    assert report.bad_coordinates == 2
    assert report.unreadable == 2
    assert report.read == len(annotations) == 2
    assert all(a.geometry.is_valid for a in annotations)
    bowtie_fixed = next(iter(annotations))
    assert bowtie_fixed.geometry.area == pytest.approx(5000)
    assert "1 self-intersecting" in report.summary()
    assert "bad.geojson" in report.summary()


def test_too_many_vertices_are_simplified(tmp_path) -> None:
    t = np.linspace(0, 2 * np.pi, 250_000, endpoint=False)
    ring = np.c_[5000 + 4000 * np.cos(t), 5000 + 4000 * np.sin(t)]
    ring = np.vstack([ring, ring[:1]]).round(1).tolist()
    path = tmp_path / "huge.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {},
            }
        )
    )
    annotations, report = read_annotations(path)
    (only,) = list(annotations)
    assert report.simplified == 1
    assert shapely.get_num_coordinates(only.geometry) <= 100_000
    assert only.geometry.area == pytest.approx(np.pi * 4000**2, rel=1e-3)


def test_write_is_atomic_and_keeps_a_backup(tmp_path) -> None:
    path = tmp_path / "s.geojson"
    first = AnnotationSet([Annotation(shapely.box(0, 0, 1, 1), "Tumor")])
    write_annotations(path, first)
    before = path.read_text()
    write_annotations(path, AnnotationSet([Annotation(shapely.box(0, 0, 2, 2), "Stroma")]))
    assert backup_path(path).read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_slide_identity_travels_with_the_file(tmp_path) -> None:
    identity = {
        "slide_id": "s",
        "fingerprint": "abc",
        "width": 10,
        "height": 10,
        "mpp": [0.5, 0.5],
    }
    path = tmp_path / "s.geojson"
    write_annotations(
        path, AnnotationSet([Annotation(shapely.Point(1, 1))], slide_identity=identity)
    )
    annotations, _ = read_annotations(path)
    assert annotations.slide_identity == identity


def test_new_annotations_leave_out_what_is_already_there() -> None:
    from slidescope.app.annotations.annotation_io import new_annotations

    there = [Annotation(shapely.box(0, 0, 10, 10), "Tumor"), Annotation(shapely.Point(5, 5))]
    same = Annotation(shapely.Polygon([(10, 10), (0, 10), (0, 0), (10, 0)]), "Tumor")  # rotated
    other_class = Annotation(shapely.box(0, 0, 10, 10), "Stroma")
    moved = Annotation(shapely.box(1, 0, 11, 10), "Tumor")
    point = Annotation(shapely.Point(5, 5))
    new, repeated = new_annotations(there, [same, other_class, moved, point])
    assert new == [other_class, moved]
    assert repeated == 2
