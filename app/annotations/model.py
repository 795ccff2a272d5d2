"""A slide's annotations as objects, edited through commands that can be undone.

An :class:`Annotation` is immutable in practice: an edit replaces it (same ``id``) with a
changed copy, so an undo step is just "these ids held these annotations before". The
:class:`AnnotationSet` holds the annotations of ONE slide in level-0 pixels and tells
listeners about every change through :attr:`AnnotationSet.changed`, a plain callback list
(no Qt), which the window's Shapes layer and the autosave follow.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry.base import BaseGeometry
from slidescope.app.annotations.classes import UNCLASSIFIED
from slidescope.app.errors import SlideScopeError

UNDO_LIMIT = 500


class LockedAnnotationError(SlideScopeError):
    """An edit was asked of a locked annotation; unlock it first."""


#: a geometry's dimension -> how it is drawn (anything else: a point)
_KINDS = {2: "polygon", 1: "line"}


def annotation_kinds(annotations: Sequence[Annotation]) -> list[str]:
    """Each annotation's :attr:`Annotation.kind`, in one vectorised pass (a table of 5,000)."""
    dims = shapely.get_dimensions([a.geometry for a in annotations])
    return [_KINDS.get(int(d), "point") for d in dims]


@dataclass(eq=False)
class Annotation:
    """One annotated object of a slide.

    Attributes
    ----------
    geometry : shapely geometry
        In level-0 pixels: Polygon / MultiPolygon (with holes; rectangles and ellipses are
        polygons), LineString / MultiLineString, Point / MultiPoint.
    classification : str or None
        The class name (QuPath's ``classification.name``); None is unclassified.
    name : str
        An optional name the user gave it.
    locked : bool
        A locked annotation cannot be moved, reshaped or deleted until unlocked.
    properties : dict
        Anything else the file carried (QuPath measurements, metadata); written back as is.
    id : str
        Stable across edits and files (QuPath's feature ``id``).
    object_type : str
        QuPath's ``objectType``: ``"annotation"``, ``"detection"``, ...
    """

    geometry: BaseGeometry
    classification: str | None = None
    name: str = ""
    locked: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    object_type: str = "annotation"

    def replace(self, **changes: Any) -> Annotation:
        """A copy with ``changes`` applied (the same id unless ``id`` is given)."""
        return dataclasses.replace(self, **changes)

    @property
    def kind(self) -> str:
        """``"polygon"``, ``"line"`` or ``"point"``: how the geometry is drawn."""
        return _KINDS.get(int(shapely.get_dimensions(self.geometry)), "point")

    @property
    def class_name(self) -> str:
        """The class name, or ``"Unclassified"``."""
        return self.classification or UNCLASSIFIED


@dataclass(frozen=True)
class Change:
    """What changed in an :class:`AnnotationSet`.

    ``kind`` is ``"added"``, ``"removed"``, ``"updated"`` (the ids hold new versions) or
    ``"reset"`` (everything may have changed).
    """

    kind: str
    ids: tuple[str, ...] = ()


class Event:
    """A list of callbacks called with one argument; psygnal-like ``connect``/``disconnect``."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Change], Any]] = []

    def connect(self, callback: Callable[[Change], Any]) -> Callable[[Change], Any]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[Change], Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, change: Change) -> None:
        for callback in list(self._callbacks):
            callback(change)


@dataclass(frozen=True)
class _Edit:
    """One undo step: for each id, the annotation before and after (None = absent)."""

    before: dict[str, Annotation | None]
    after: dict[str, Annotation | None]
    what: str


@dataclass(frozen=True)
class AnnotationMeasurement:
    """Size of one annotation in physical units (0 where the shape has no area/length)."""

    id: str
    classification: str
    area_um2: float
    perimeter_um: float

    @property
    def area_mm2(self) -> float:
        return self.area_um2 / 1e6


@dataclass(frozen=True)
class ClassMeasurement:
    """Totals over the annotations of one class."""

    classification: str
    count: int
    area_um2: float
    perimeter_um: float

    @property
    def area_mm2(self) -> float:
        return self.area_um2 / 1e6


@dataclass(frozen=True)
class Measurements:
    """Per-annotation and per-class sizes (see :meth:`AnnotationSet.measurements`)."""

    per_annotation: list[AnnotationMeasurement]
    per_class: dict[str, ClassMeasurement]


class AnnotationSet:
    """The annotations of one slide, with undo/redo.

    Parameters
    ----------
    annotations : iterable of Annotation
        Initial content (not an undoable edit).
    slide_identity : dict or None
        :meth:`SlideIdentity.to_dict` of the slide they belong to.
    """

    def __init__(
        self,
        annotations: Iterable[Annotation] = (),
        slide_identity: dict[str, Any] | None = None,
    ) -> None:
        self._items: dict[str, Annotation] = {a.id: a for a in annotations}
        self.slide_identity = slide_identity
        self.changed = Event()
        self.revision = 0  # bumped by every change, so a saver can tell what it has written
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []

    # -- reading ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Annotation]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, annotation_id: object) -> bool:
        return annotation_id in self._items

    def __getitem__(self, annotation_id: str) -> Annotation:
        return self._items[annotation_id]

    @property
    def ids(self) -> list[str]:
        return list(self._items)

    def by_class(self, name: str | None) -> list[Annotation]:
        """The annotations of one class (None or ``"Unclassified"``: the unclassified)."""
        if name == UNCLASSIFIED:
            name = None
        return [a for a in self._items.values() if a.classification == name]

    def classes(self) -> list[str]:
        """The class names in use, in order of first appearance."""
        return list(dict.fromkeys(a.class_name for a in self._items.values()))

    def snapshot(self) -> list[Annotation]:
        """The annotations as a list that later edits do not change (for a saver thread)."""
        return list(self._items.values())

    # -- editing (every edit is one undo step) --------------------------------------------

    def add(self, annotations: Annotation | Iterable[Annotation], what: str = "add") -> None:
        """Add one or many annotations as one undo step."""
        items = [annotations] if isinstance(annotations, Annotation) else list(annotations)
        if not items:
            return
        self._do(
            _Edit({a.id: self._items.get(a.id) for a in items}, {a.id: a for a in items}, what)
        )

    def remove(self, ids: str | Iterable[str], what: str = "delete") -> None:
        """Delete annotations by id (unknown ids are ignored; locked ones refused)."""
        ids = [i for i in ([ids] if isinstance(ids, str) else ids) if i in self._items]
        if not ids:
            return
        self._check_unlocked(ids)
        self._do(_Edit({i: self._items[i] for i in ids}, dict.fromkeys(ids), what))

    def update(self, annotations: Annotation | Iterable[Annotation], what: str = "edit") -> None:
        """Replace annotations by new versions with the same ids, as one undo step.

        Raises
        ------
        LockedAnnotationError
            When the shape of a locked annotation would change (its class, name and
            lock may change, as in QuPath).
        KeyError
            When an id is not in the set.
        """
        items = [annotations] if isinstance(annotations, Annotation) else list(annotations)
        items = [a for a in items if a is not self._items[a.id]]
        if not items:
            return
        self._check_unlocked(
            [a.id for a in items if a.locked and a.geometry is not self._items[a.id].geometry]
        )
        self._do(_Edit({a.id: self._items[a.id] for a in items}, {a.id: a for a in items}, what))

    def set_class(self, ids: Iterable[str], classification: str | None) -> None:
        """Give annotations a class (one undo step)."""
        if classification == UNCLASSIFIED:
            classification = None
        items = [self._items[i] for i in ids if i in self._items]
        self.update(
            [
                a.replace(classification=classification)
                for a in items
                if a.classification != classification
            ],
            what="set class",
        )

    def set_locked(self, ids: Iterable[str], locked: bool) -> None:
        """Lock or unlock annotations (one undo step)."""
        items = [self._items[i] for i in ids if i in self._items]
        changed = {a.id: a.replace(locked=locked) for a in items if a.locked != locked}
        if changed:
            self._do(_Edit({i: self._items[i] for i in changed}, dict(changed), "lock"))

    def move(self, ids: Iterable[str], dx: float, dy: float) -> None:
        """Translate annotations by ``(dx, dy)`` level-0 px (one undo step)."""
        items = [self._items[i] for i in ids if i in self._items]
        self.update(
            [a.replace(geometry=affinity.translate(a.geometry, dx, dy)) for a in items],
            what="move",
        )

    def edit(
        self,
        add: Iterable[Annotation] = (),
        update: Iterable[Annotation] = (),
        remove: Iterable[str] = (),
        what: str = "edit",
    ) -> None:
        """Add, change and delete annotations as ONE undo step (e.g. a brush stroke)."""
        add, update = list(add), [a for a in update if a.id in self._items]
        remove = [i for i in remove if i in self._items]
        self._check_unlocked(
            remove + [a.id for a in update if a.geometry is not self._items[a.id].geometry]
        )
        before: dict[str, Annotation | None] = {a.id: self._items.get(a.id) for a in add + update}
        after: dict[str, Annotation | None] = {a.id: a for a in add + update}
        for i in remove:
            before[i], after[i] = self._items[i], None
        if after:
            self._do(_Edit(before, after, what))

    def replace_all(self, annotations: Iterable[Annotation], what: str = "replace") -> None:
        """Make the set hold exactly ``annotations`` (one undo step)."""
        new = {a.id: a for a in annotations}
        before: dict[str, Annotation | None] = {i: self._items.get(i) for i in new}
        after: dict[str, Annotation | None] = dict(new)
        for i, a in self._items.items():
            if i not in new:
                before[i], after[i] = a, None
        self._do(_Edit(before, after, what))

    # -- undo ------------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Take back the last edit; False when there is none."""
        if not self._undo:
            return False
        edit = self._undo.pop()
        self._apply(edit.before)
        self._redo.append(edit)
        return True

    def redo(self) -> bool:
        """Do again the last edit taken back; False when there is none."""
        if not self._redo:
            return False
        edit = self._redo.pop()
        self._apply(edit.after)
        self._undo.append(edit)
        return True

    def clear_history(self) -> None:
        self._undo.clear()
        self._redo.clear()

    # -- measuring -------------------------------------------------------------------------

    def measurements(self, mpp: float | tuple[float, float] | None) -> Measurements:
        """Area (µm², mm²) and perimeter (µm) of each annotation and totals per class.

        Parameters
        ----------
        mpp : float or (float, float) or None
            Microns per pixel (x, y) of level 0. None measures in pixels (µm = px).

        Notes
        -----
        Ignore classes (``Ignore*``) are measured like any other; lines have a length
        (reported as perimeter) and no area; points have neither.
        """
        mx, my = (1.0, 1.0) if mpp is None else (mpp, mpp) if np.isscalar(mpp) else mpp  # type: ignore[misc]
        items = list(self._items.values())
        geoms = np.array([a.geometry for a in items], dtype=object)
        if len(items) and mx != my:
            geoms = np.array(
                [affinity.scale(g, mx, my, origin=(0, 0)) for g in geoms], dtype=object
            )
            area, length = shapely.area(geoms), shapely.length(geoms)
        else:
            area = shapely.area(geoms) * mx * my if len(items) else np.zeros(0)
            length = shapely.length(geoms) * mx if len(items) else np.zeros(0)
        per_annotation = [
            AnnotationMeasurement(a.id, a.class_name, float(ar), float(le))
            for a, ar, le in zip(items, area, length)
        ]
        per_class: dict[str, ClassMeasurement] = {}
        for m in per_annotation:
            old = per_class.get(m.classification)
            per_class[m.classification] = ClassMeasurement(
                m.classification,
                (old.count if old else 0) + 1,
                (old.area_um2 if old else 0.0) + m.area_um2,
                (old.perimeter_um if old else 0.0) + m.perimeter_um,
            )
        return Measurements(per_annotation, per_class)

    # -- internals -------------------------------------------------------------------------

    def _check_unlocked(self, ids: Iterable[str]) -> None:
        locked = [i for i in ids if i in self._items and self._items[i].locked]
        if locked:
            first = self._items[locked[0]]
            what = (
                f"“{first.name}”"
                if first.name
                else f"a {first.classification or 'unclassified'} annotation"
            )
            if len(locked) == 1:
                raise LockedAnnotationError(
                    f"{what[:1].upper()}{what[1:]} is locked; unlock it (Unlock) to change it"
                )
            raise LockedAnnotationError(
                f"{len(locked)} annotations are locked ({what} and {len(locked) - 1} more); "
                "unlock them (Unlock) to change them"
            )

    def _do(self, edit: _Edit) -> None:
        self._apply(edit.after)
        self._undo.append(edit)
        del self._undo[:-UNDO_LIMIT]
        self._redo.clear()

    def _apply(self, state: Mapping[str, Annotation | None]) -> None:
        added: list[str] = []
        removed: list[str] = []
        updated: list[str] = []
        for i, annotation in state.items():
            present = i in self._items
            if annotation is None:
                if present:
                    del self._items[i]
                    removed.append(i)
            else:
                self._items[i] = annotation
                (updated if present else added).append(i)
        self.revision += 1
        for kind, ids in (("removed", removed), ("added", added), ("updated", updated)):
            if ids:
                self.changed.emit(Change(kind, tuple(ids)))
