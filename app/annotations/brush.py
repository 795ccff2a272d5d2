"""The brush: a round stroke that adds area to the polygon under it, or erases area.

Pure geometry on an :class:`AnnotationSet` (shapely union / difference); the window turns
mouse drags into a stroke. Each stroke is one undo step.
"""

from __future__ import annotations

from collections.abc import Sequence

import shapely
from shapely.geometry.base import BaseGeometry
from slidescope.app.annotations.model import Annotation, AnnotationSet


def brush_stroke(points: Sequence[tuple[float, float]], radius: float) -> BaseGeometry:
    """The area a round brush of ``radius`` (level-0 px) covers along ``points`` ``(x, y)``."""
    if len(points) == 1:
        return shapely.Point(points[0]).buffer(radius, quad_segs=16)
    return shapely.LineString(points).buffer(radius, quad_segs=16)


def paint(
    annotations: AnnotationSet,
    stroke: BaseGeometry,
    classification: str | None,
    visible: set[str] | None = None,
) -> str:
    """Add ``stroke`` to the unlocked polygons of ``classification`` it touches (merged into
    one), or make it a new polygon of that class; returns the id of the painted annotation.

    ``visible`` limits the candidates to these ids (hidden classes are not painted into).
    """
    touched = [
        a
        for a in annotations
        if a.kind == "polygon"
        and not a.locked
        and a.classification == classification
        and (visible is None or a.id in visible)
        and a.geometry.intersects(stroke)
    ]
    if not touched:
        new = Annotation(geometry=shapely.make_valid(stroke), classification=classification)
        annotations.add(new, what="brush")
        return new.id
    keep, *others = touched
    merged = shapely.union_all([keep.geometry, stroke, *(a.geometry for a in others)])
    annotations.edit(
        update=[keep.replace(geometry=_polygonal(merged))],
        remove=[a.id for a in others],
        what="brush",
    )
    return keep.id


def erase(
    annotations: AnnotationSet, stroke: BaseGeometry, visible: set[str] | None = None
) -> list[str]:
    """Cut ``stroke`` out of every unlocked polygon it touches (an emptied one is deleted);
    returns the ids changed or deleted."""
    update, remove = [], []
    for a in annotations:
        if a.kind != "polygon" or a.locked or (visible is not None and a.id not in visible):
            continue
        if not a.geometry.intersects(stroke):
            continue
        rest = _polygonal(a.geometry.difference(stroke))
        if rest.is_empty or rest.area < 1e-6:
            remove.append(a.id)
        else:
            update.append(a.replace(geometry=rest))
    annotations.edit(update=update, remove=remove, what="erase")
    return [a.id for a in update] + remove


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the areas of a shapely result (slivers of lines and points dropped)."""
    geometry = shapely.make_valid(geometry)
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)
