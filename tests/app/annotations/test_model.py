"""The annotation model: edits as commands, undo/redo, change events, measurements."""

from __future__ import annotations

import pytest
import shapely
from slidescope.app.annotations.classes import (
    DEFAULT_CLASSES,
    PathClass,
    class_color,
    is_ignore,
    parse_color,
)
from slidescope.app.annotations.model import (
    Annotation,
    AnnotationSet,
    LockedAnnotationError,
)


def square(x: float, y: float, size: float = 10.0) -> shapely.Polygon:
    return shapely.box(x, y, x + size, y + size)


def test_default_classes_are_qupaths() -> None:
    names = [c.name for c in DEFAULT_CLASSES]
    assert names == ["Tumor", "Stroma", "Immune cells", "Necrosis", "Other", "Region*", "Ignore*"]
    assert class_color("Tumor") == (200, 0, 0)
    assert is_ignore("Ignore*")
    assert is_ignore("Region*")
    assert not is_ignore("Tumor")
    assert not is_ignore(None)
    assert parse_color(-16777216 | (10 << 16) | (20 << 8) | 30) == (10, 20, 30)
    assert class_color("My class") == class_color("My class") != class_color("Other class")
    assert PathClass.from_dict(PathClass("A", (1, 2, 3)).to_dict()) == PathClass("A", (1, 2, 3))


def test_add_remove_update_undo_redo_and_events() -> None:
    changes = []
    annotations = AnnotationSet()
    annotations.changed.connect(changes.append)
    a = Annotation(square(0, 0), "Tumor")
    b = Annotation(square(20, 0), "Stroma")
    annotations.add([a, b])
    assert len(annotations) == 2
    assert changes[-1].kind == "added"
    annotations.set_class([a.id], "Necrosis")
    assert annotations[a.id].classification == "Necrosis"
    assert changes[-1].kind == "updated"
    assert changes[-1].ids == (a.id,)
    annotations.move([b.id], 5, 5)
    assert annotations[b.id].geometry.bounds == (25, 5, 35, 15)
    annotations.remove(a.id)
    assert a.id not in annotations
    assert changes[-1].kind == "removed"

    assert annotations.undo()  # delete
    assert annotations[a.id].classification == "Necrosis"
    assert annotations.undo()  # move
    assert annotations[b.id].geometry.bounds == (20, 0, 30, 10)
    assert annotations.undo()  # class
    assert annotations[a.id].classification == "Tumor"
    assert annotations.undo()  # add
    assert len(annotations) == 0
    assert not annotations.undo()
    assert annotations.redo()
    assert len(annotations) == 2
    assert annotations.redo()
    assert annotations[a.id].classification == "Necrosis"
    # a new edit clears what could be redone
    annotations.add(Annotation(square(50, 50)))
    assert not annotations.can_redo
    assert [x.id for x in annotations.by_class("Necrosis")] == [a.id]
    assert len(annotations.by_class(None)) == len(annotations.by_class("Unclassified")) == 1


def test_revision_counts_every_change() -> None:
    annotations = AnnotationSet()
    start = annotations.revision
    annotations.add(Annotation(square(0, 0)))
    annotations.undo()
    assert annotations.revision == start + 2


def test_locked_annotations_keep_their_shape() -> None:
    annotations = AnnotationSet()
    a = Annotation(square(0, 0), "Tumor")
    annotations.add(a)
    annotations.set_locked([a.id], True)
    with pytest.raises(LockedAnnotationError, match="A Tumor annotation is locked; unlock it"):
        annotations.move([a.id], 1, 1)
    b = Annotation(square(5, 5), "Stroma", name="margin")
    annotations.add(b)
    annotations.set_locked([b.id], True)
    with pytest.raises(LockedAnnotationError, match=r"2 annotations are locked .* and 1 more"):
        annotations.move([a.id, b.id], 1, 1)
    with pytest.raises(LockedAnnotationError, match="“margin” is locked"):
        annotations.move([b.id], 1, 1)
    annotations.set_locked([b.id], False)
    annotations.remove([b.id])
    with pytest.raises(LockedAnnotationError):
        annotations.remove([a.id])
    annotations.set_class([a.id], "Stroma")  # the class may change, as in QuPath
    assert annotations[a.id].classification == "Stroma"
    annotations.set_locked([a.id], False)
    annotations.remove([a.id])
    assert len(annotations) == 0


def test_measurements_in_microns_per_class() -> None:
    annotations = AnnotationSet(
        [
            Annotation(square(0, 0, 100), "Tumor"),
            Annotation(square(200, 0, 100).difference(square(225, 25, 50)), "Tumor"),
            Annotation(shapely.LineString([(0, 0), (30, 40)]), "Stroma"),
            Annotation(shapely.Point(5, 5)),
        ]
    )
    m = annotations.measurements(0.5)
    first = m.per_annotation[0]
    assert first.area_um2 == pytest.approx(100 * 100 * 0.25)
    assert first.area_mm2 == pytest.approx(2500 / 1e6)
    assert first.perimeter_um == pytest.approx(400 * 0.5)
    tumor = m.per_class["Tumor"]
    assert tumor.count == 2
    assert tumor.area_um2 == pytest.approx((10000 + 10000 - 2500) * 0.25)
    assert m.per_class["Stroma"].perimeter_um == pytest.approx(25.0)
    assert m.per_class["Stroma"].area_um2 == 0
    assert m.per_class["Unclassified"].count == 1
    # anisotropic pixels scale x and y apart
    aniso = annotations.measurements((1.0, 2.0)).per_annotation[0]
    assert aniso.area_um2 == pytest.approx(100 * 100 * 2)
    assert aniso.perimeter_um == pytest.approx(2 * 100 + 2 * 200)
