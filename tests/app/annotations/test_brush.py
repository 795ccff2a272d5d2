"""The brush paints into the polygon under it and erases area; one undo step a stroke."""

from __future__ import annotations

import pytest
import shapely
from slidescope.app.annotations.brush import brush_stroke, erase, paint
from slidescope.app.annotations.model import Annotation, AnnotationSet


def test_paint_merges_into_the_polygon_of_the_class_under_it() -> None:
    tumor = Annotation(shapely.box(0, 0, 100, 100), "Tumor")
    stroma = Annotation(shapely.box(0, 200, 100, 300), "Stroma")
    annotations = AnnotationSet([tumor, stroma])
    stroke = brush_stroke([(100, 50), (150, 50)], radius=10)
    assert paint(annotations, stroke, "Tumor") == tumor.id
    assert len(annotations) == 2
    grown = annotations[tumor.id].geometry
    assert grown.geom_type == "Polygon"
    assert grown.area == pytest.approx(10000 + stroke.difference(shapely.box(0, 0, 100, 100)).area)
    # elsewhere, a new polygon of the class
    new_id = paint(annotations, brush_stroke([(500, 500)], 5), "Tumor")
    assert new_id != tumor.id
    assert annotations[new_id].geometry.area == pytest.approx(3.14159 * 25, rel=0.02)
    # a stroke joining two polygons of the class merges them
    paint(annotations, brush_stroke([(100, 50), (500, 500)], 8), "Tumor")
    assert len(annotations.by_class("Tumor")) == 1
    annotations.undo()
    assert len(annotations.by_class("Tumor")) == 2


def test_erase_cuts_area_and_deletes_emptied_polygons_but_not_locked_ones() -> None:
    big = Annotation(shapely.box(0, 0, 100, 100), "Tumor")
    small = Annotation(shapely.box(200, 0, 204, 4), "Tumor")
    locked = Annotation(shapely.box(0, 200, 100, 300), "Stroma", locked=True)
    annotations = AnnotationSet([big, small, locked])
    erase(annotations, brush_stroke([(50, -20), (50, 320)], 10))
    cut = annotations[big.id].geometry
    assert cut.geom_type == "MultiPolygon"
    assert cut.area == pytest.approx(8000, rel=0.01)
    assert annotations[locked.id].geometry.area == 10000
    erase(annotations, brush_stroke([(202, 2)], 10))
    assert small.id not in annotations
    annotations.undo()
    assert small.id in annotations
