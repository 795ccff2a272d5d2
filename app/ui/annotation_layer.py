"""A slide's :class:`AnnotationSet` shown and edited as a napari Shapes layer.

The core set is the truth; the layer is a view of it that also takes edits. Each
annotation becomes one or more napari shapes (a polygon per part, a path per hole or line,
a small ellipse per point); ``shape_ids[i]`` is the annotation id of shape ``i``. Edits in
the layer (drawing, moving, vertex edits, delete) become core edits; core changes (undo,
class changes, the brush, imports) re-draw the shapes of the ids that changed. Hidden
classes are simply not drawn, so they cannot be selected or edited.

The layer sits in level-0 space like every overlay (``shapes_placement``): its data are
level-0 ``(y, x)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import shapely
from napari.layers.base._base_constants import ActionType
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from shapely.geometry.base import BaseGeometry
from slidescope.app.annotations.brush import brush_stroke, erase, paint
from slidescope.app.annotations.classes import DEFAULT_CLASSES, PathClass, class_color
from slidescope.app.annotations.model import (
    Annotation,
    AnnotationSet,
    Change,
    LockedAnnotationError,
)
from slidescope.app.display.placement import SlideSpace, shapes_placement

LAYER_NAME = "Annotations"
FILL_ALPHA = 0.35
ELLIPSE_VERTICES = 64
# napari modes of the drawing tools; point and brush are ours (pan_zoom without panning)
TOOL_MODES = {
    "pan": "pan_zoom",
    "select": "select",
    "vertices": "direct",
    "polygon": "add_polygon",
    "freehand": "add_polygon_lasso",
    "rectangle": "add_rectangle",
    "ellipse": "add_ellipse",
    "line": "add_line",
    "point": "pan_zoom",
    "brush": "pan_zoom",
    "eraser": "pan_zoom",
}


#: how long after the last in-place edit the layer's thumbnail is redrawn
THUMBNAIL_DELAY_MS = 300


def is_annotation_click(viewer: Any) -> bool:
    """Whether a click in ``viewer`` goes to the annotation layer (draw, select, brush):
    such clicks must not pin the heatmap read-out."""
    layer = viewer.layers.selection.active
    if layer is None or not layer.metadata.get("slidescope_annotations"):
        return False
    return str(layer.mode) != "pan_zoom" or not layer.mouse_pan


class AnnotationLayer:
    """Keeps a napari Shapes layer and an :class:`AnnotationSet` in step.

    Parameters
    ----------
    viewer : napari.Viewer
    annotations : AnnotationSet
        The slide's annotations (edited in place).
    space : SlideSpace
        The slide's space (for placement and the brush size in µm).
    classes : list of PathClass
        Colours; ``active_class`` is what new shapes get.
    """

    def __init__(
        self,
        viewer: Any,
        annotations: AnnotationSet,
        space: SlideSpace,
        classes: Iterable[PathClass] = DEFAULT_CLASSES,
        edge_width: float = 2.0,
    ) -> None:
        self.viewer = viewer
        self.annotations = annotations
        self.space = space
        self.classes = list(classes)
        self.active_class: str | None = self.classes[0].name if self.classes else None
        self.hidden: set[str] = set()  # class names not drawn
        self.brush_um = 50.0
        self.point_radius = 4.0 * edge_width
        self.edge_width = edge_width
        self.tool = "pan"
        self.shape_ids: list[str | None] = []
        self._syncing = False
        self._removing: list[str | None] = []
        self._changed: set[int] = set()
        self._stroke: list[tuple[float, float]] = []
        self.layer = viewer.add_shapes(
            name=LAYER_NAME,
            edge_width=edge_width,
            metadata={"slidescope_annotations": True},
            **shapes_placement(space).kwargs,
        )
        self._reconcile_timer = QTimer()
        self._reconcile_timer.setSingleShot(True)
        self._reconcile_timer.setInterval(0)
        self._reconcile_timer.timeout.connect(self.reconcile)
        # the layer's thumbnail (the Layers list) redraws every shape: after an in-place
        # edit it catches up once the edits pause, not on each one (12 ms at 5,000 shapes)
        self._thumbnail_timer = QTimer()
        self._thumbnail_timer.setSingleShot(True)
        self._thumbnail_timer.setInterval(THUMBNAIL_DELAY_MS)
        self._thumbnail_timer.timeout.connect(self._update_thumbnail)
        self.layer.events.data.connect(self._on_layer_data)
        self.layer.mouse_drag_callbacks.append(self._on_drag)
        annotations.changed.connect(self._on_core_change)
        viewer.layers.events.inserted.connect(self._keep_on_top)
        self.redraw()

    # -- core -> layer ---------------------------------------------------------------------

    def redraw(self) -> None:
        """Draw every visible annotation anew (after a class is hidden, shown, recoloured)."""
        self._syncing = True
        try:
            self.layer.selected_data = set()
            self.layer.data = []
            self.shape_ids = []
            self._add_shapes([a for a in self.annotations if self._shown(a)])
        finally:
            self._syncing = False

    def _on_core_change(self, change: Change) -> None:
        if self._syncing:
            return
        self._redraw_ids(change.ids)

    def _redraw_ids(self, ids: Iterable[str]) -> None:
        ids = set(ids)
        if self._redraw_in_place(ids):
            return
        self._syncing = True
        try:
            indices = [i for i, a in enumerate(self.shape_ids) if a in ids]
            if indices:
                self.layer.selected_data = set(indices)
                self.layer.remove_selected()
                for i in sorted(indices, reverse=True):
                    del self.shape_ids[i]
            # in the set's order (an import's: the file's), not the id set's arbitrary one
            self._add_shapes([a for a in self.annotations if a.id in ids and self._shown(a)])
        finally:
            self._syncing = False

    def _redraw_in_place(self, ids: set[str]) -> bool:
        """Edit the shapes of ``ids`` where they are (a move, a class change): napari's
        remove + add rebuild the whole layer's mesh, 20x slower at thousands of shapes.
        False when the shapes' number or types change (then they are re-added)."""
        if not ids or len(ids) > 50:
            return False
        plan = []
        for annotation_id in ids:
            indices = [i for i, a in enumerate(self.shape_ids) if a == annotation_id]
            if annotation_id not in self.annotations or not indices:
                return False
            annotation = self.annotations[annotation_id]
            if not self._shown(annotation):
                return False
            shapes = napari_shapes(annotation.geometry, self.point_radius)
            types = [self.layer.shape_type[i] for i in indices]
            if len(shapes) != len(indices) or [t for _, t, _ in shapes] != types:
                return False
            plan.append((annotation, indices, shapes))
        view = self.layer._data_view  # napari's own per-shape edit, as its mouse tools use
        self._syncing = True
        moved = False
        try:
            with view.batched_updates():  # one mesh update for the whole edit
                for annotation, indices, shapes in plan:
                    edge, face = self._colors(annotation)
                    for i, (vertices, _type, filled) in zip(indices, shapes):
                        # the shape's own vertices (``layer.data`` lists every shape's)
                        if not np.array_equal(np.asarray(view.shapes[i].data)[:, -2:], vertices):
                            view.edit(i, vertices)
                            moved = True
                        view.update_edge_color(i, edge)
                        view.update_face_color(i, face if filled else (0, 0, 0, 0))
            self.layer.refresh(thumbnail=False, extent=moved)
            self._thumbnail_timer.start()
        finally:
            self._syncing = False
        return True

    def _update_thumbnail(self) -> None:
        if self.layer in self.viewer.layers:
            self.layer.refresh(data_displayed=False, highlight=False, extent=False)

    def _shown(self, annotation: Annotation) -> bool:
        return annotation.class_name not in self.hidden

    def _add_shapes(self, annotations: list[Annotation]) -> None:
        data, types, edges, faces, ids = [], [], [], [], []
        every = napari_shapes_of([a.geometry for a in annotations], self.point_radius)
        for a, shapes in zip(annotations, every):
            edge, face = self._colors(a)
            for vertices, shape_type, filled in shapes:
                data.append(vertices)
                types.append(shape_type)
                edges.append(edge)
                faces.append(face if filled else (0, 0, 0, 0))
                ids.append(a.id)
        if not data:
            return
        self.layer.add(
            data,
            shape_type=types,
            edge_color=np.asarray(edges),
            face_color=np.asarray(faces),
            edge_width=self.edge_width,
        )
        self.shape_ids.extend(ids)

    def _colors(self, a: Annotation) -> tuple[tuple[float, ...], tuple[float, ...]]:
        r, g, b = (c / 255 for c in class_color(a.classification, self.classes))
        return (r, g, b, 1.0), (r, g, b, FILL_ALPHA if a.kind == "polygon" else 0.0)

    # -- layer -> core ---------------------------------------------------------------------

    def _on_layer_data(self, event: Any) -> None:
        if self._syncing:
            return
        action = event.action
        if action == ActionType.REMOVING:
            self._removing = [
                self.shape_ids[i] for i in event.data_indices if 0 <= i < len(self.shape_ids)
            ]
            self._removing_indices = sorted(
                (i for i in event.data_indices if 0 <= i < len(self.shape_ids)), reverse=True
            )
        elif action == ActionType.REMOVED:
            self._removed()
        elif action in (ActionType.ADDED, ActionType.CHANGED):
            self._changed.update(i for i in event.data_indices if i >= 0)
            self._reconcile_timer.start()  # after napari has finished its own bookkeeping

    def reconcile(self) -> None:
        """Turn what was drawn or changed in the layer into core edits."""
        if self.layer._is_creating:
            return  # a polygon is being drawn; its last event comes when it is finished
        n = len(self.layer.data)
        while len(self.shape_ids) > n and self.shape_ids[-1] is None:
            self.shape_ids.pop()  # napari dropped a shape with too few vertices
        self.shape_ids.extend([None] * (n - len(self.shape_ids)))
        new = [i for i, a in enumerate(self.shape_ids) if a is None]
        changed = {self.shape_ids[i] for i in self._changed if i < n} - {None}
        self._changed.clear()
        added = []
        for i in new:
            geometry = self._geometry_of_new(i)
            if geometry is None or geometry.is_empty:
                continue
            annotation = Annotation(geometry, self.active_class)
            self.shape_ids[i] = annotation.id
            added.append(annotation)
        updates = []
        for annotation_id in changed:
            if annotation_id in self.annotations:
                old = self.annotations[annotation_id]
                geometry = self._geometry_from_shapes(old)
                if not geometry.equals_exact(old.geometry, 1e-9):
                    updates.append(old.replace(geometry=geometry))
        self._apply(add=added, update=updates, revert=[a.id for a in updates])
        # shapes napari kept but that made no geometry (degenerate): drop them
        if any(a is None for a in self.shape_ids):
            self._drop_unassigned()

    def _removed(self) -> None:
        for i in getattr(self, "_removing_indices", []):
            if i < len(self.shape_ids):
                del self.shape_ids[i]
        gone = {a for a in self._removing if a}
        self._removing, self._removing_indices = [], []
        remove, update = [], []
        for annotation_id in gone:
            if annotation_id not in self.annotations:
                continue
            if annotation_id in self.shape_ids:  # part of a multi-part annotation
                old = self.annotations[annotation_id]
                update.append(old.replace(geometry=self._geometry_from_shapes(old)))
            else:
                remove.append(annotation_id)
        self._apply(update=update, remove=remove, revert=list(gone))

    def _apply(
        self,
        add: list[Annotation] = (),  # type: ignore[assignment]
        update: list[Annotation] = (),  # type: ignore[assignment]
        remove: list[str] = (),  # type: ignore[assignment]
        revert: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        if not (add or update or remove):
            return
        self._syncing = True
        try:
            self.annotations.edit(add=add, update=update, remove=remove, what="draw")
        except LockedAnnotationError as error:
            self._syncing = False
            show_info(str(error))
            self._redraw_ids(revert)  # put the locked shapes back where they were
            return
        finally:
            self._syncing = False
        if add:  # the drawn shape gets its class colours (napari used the current ones)
            self._redraw_ids([a.id for a in add])

    def _drop_unassigned(self) -> None:
        indices = [i for i, a in enumerate(self.shape_ids) if a is None]
        if indices:
            self._syncing = True
            try:
                self.layer.selected_data = set(indices)
                self.layer.remove_selected()
                self.shape_ids = [a for a in self.shape_ids if a is not None]
            finally:
                self._syncing = False

    def _geometry_of_new(self, index: int) -> BaseGeometry | None:
        vertices = np.asarray(self.layer.data[index])[:, -2:][:, ::-1]  # (x, y)
        shape_type = self.layer.shape_type[index]
        return shape_geometry(vertices, shape_type, as_point=False)

    def _geometry_from_shapes(self, annotation: Annotation) -> BaseGeometry:
        """An annotation's geometry rebuilt from its shapes in the layer (after an edit)."""
        parts, holes = [], []
        kind = annotation.kind
        for i, a in enumerate(self.shape_ids):
            if a != annotation.id:
                continue
            vertices = np.asarray(self.layer.data[i])[:, -2:][:, ::-1]
            shape_type = self.layer.shape_type[i]
            geometry = shape_geometry(vertices, shape_type, as_point=kind == "point")
            if kind == "polygon" and shape_type == "path":
                holes.append(shapely.Polygon(vertices))
            elif geometry is not None:
                parts.append(geometry)
        if kind == "point":
            return shapely.multipoints(parts) if len(parts) > 1 else parts[0]
        if kind == "line":
            return shapely.multilinestrings(parts) if len(parts) > 1 else parts[0]
        area = shapely.union_all(parts)
        if holes:
            area = area.difference(shapely.union_all(holes))
        return shapely.make_valid(area) if not area.is_valid else area

    # -- tools -----------------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        """One of :data:`TOOL_MODES`; the layer becomes the active one."""
        if tool not in TOOL_MODES:
            raise ValueError(f"unknown tool {tool!r}; one of {sorted(TOOL_MODES)}")
        self.tool = tool
        self.viewer.layers.selection.active = self.layer
        self.layer.mode = TOOL_MODES[tool]
        if tool in ("point", "brush", "eraser"):
            self.layer.mouse_pan = False  # our own drag callback takes the clicks
        edge, face = self._colors(Annotation(shapely.Polygon(), self.active_class))
        self.layer.current_edge_color = edge
        self.layer.current_face_color = face

    def set_active_class(self, name: str | None) -> None:
        self.active_class = name
        if self.tool in TOOL_MODES:
            edge, face = self._colors(Annotation(shapely.Polygon(), name))
            self.layer.current_edge_color = edge
            self.layer.current_face_color = face

    def selected_ids(self) -> list[str]:
        ids = [
            self.shape_ids[i] for i in sorted(self.layer.selected_data) if i < len(self.shape_ids)
        ]
        return list(dict.fromkeys(a for a in ids if a))

    def select_ids(self, ids: Iterable[str]) -> None:
        ids = set(ids)
        self.layer.selected_data = {i for i, a in enumerate(self.shape_ids) if a in ids}

    def set_hidden(self, hidden: set[str]) -> None:
        self.hidden = set(hidden)
        self.redraw()

    def set_classes(self, classes: Iterable[PathClass]) -> None:
        self.classes = list(classes)
        self.redraw()

    def _on_drag(self, layer: Any, event: Any) -> Any:
        if self.tool not in ("point", "brush", "eraser") or layer.mouse_pan:
            return
        start = self.space.to_level0(tuple(event.position))
        if self.tool == "point":
            self.annotations.add(Annotation(shapely.Point(start), self.active_class), what="point")
            return
        self._stroke = [start]
        yield
        while event.type == "mouse_move":
            self._stroke.append(self.space.to_level0(tuple(event.position)))
            yield
        self.stroke(self._stroke)

    def stroke(self, points: list[tuple[float, float]]) -> None:
        """Apply a brush (or eraser) stroke along level-0 ``points`` ``(x, y)``."""
        mpp = self.space.mpp[0] if self.space.mpp else 1.0
        area = brush_stroke(points, radius=self.brush_um / 2 / mpp)
        visible = {a.id for a in self.annotations if self._shown(a)}
        if self.tool == "eraser":
            erase(self.annotations, area, visible)
        else:
            paint(self.annotations, area, self.active_class, visible)

    def _keep_on_top(self, _event: Any = None) -> None:
        # heatmaps come and go; annotations stay above them, visible and clickable
        layers = self.viewer.layers
        if self.layer in layers and layers.index(self.layer) != len(layers) - 1:
            layers.move(layers.index(self.layer), len(layers))

    def close(self) -> None:
        """Stop following the set and take the layer out of the viewer."""
        self.annotations.changed.disconnect(self._on_core_change)
        self.viewer.layers.events.inserted.disconnect(self._keep_on_top)
        self._reconcile_timer.stop()
        self._thumbnail_timer.stop()
        if self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)


def napari_shapes_of(
    geometries: Sequence[BaseGeometry], point_radius: float
) -> list[list[tuple[np.ndarray, str, bool]]]:
    """:func:`napari_shapes` of each geometry, the plain polygons' (no holes, one part) in
    one vectorised pass: at 5,000 QuPath polygons, shapely's per-polygon ring access was a
    third of the time to show them."""
    array = np.empty(len(geometries), dtype=object)
    array[:] = list(geometries)
    plain = np.zeros(len(array), dtype=bool)
    if len(array):
        polygon = shapely.get_type_id(array) == shapely.GeometryType.POLYGON
        plain = polygon & (shapely.get_num_interior_rings(array) == 0) & ~shapely.is_empty(array)
    rings = shapely.get_exterior_ring(array[plain])
    coords, index = shapely.get_coordinates(rings, return_index=True)
    yx = np.ascontiguousarray(coords[:, ::-1])
    counts = np.bincount(index, minlength=len(rings))
    ends = np.cumsum(counts)
    starts = ends - counts
    every: list[list[tuple[np.ndarray, str, bool]]] = []
    k = 0
    for geometry, is_plain in zip(geometries, plain):
        if is_plain:  # the ring without its closing vertex, as napari_shapes gives it
            every.append([(yx[starts[k] : ends[k] - 1], "polygon", True)])
            k += 1
        else:
            every.append(napari_shapes(geometry, point_radius))
    return every


def napari_shapes(
    geometry: BaseGeometry, point_radius: float
) -> list[tuple[np.ndarray, str, bool]]:
    """``(vertices (y, x), shape_type, filled)`` napari shapes drawing a geometry."""
    shapes: list[tuple[np.ndarray, str, bool]] = []
    for part in shapely.get_parts(geometry):
        kind = part.geom_type
        if kind == "Polygon":
            shapes.append((np.asarray(part.exterior.coords)[:-1, ::-1], "polygon", True))
            shapes += [(np.asarray(r.coords)[:, ::-1], "path", False) for r in part.interiors]
        elif kind == "LineString":
            shapes.append((np.asarray(part.coords)[:, ::-1], "path", False))
        elif kind == "Point":
            x, y = part.x, part.y
            r = point_radius
            box = np.array([[y - r, x - r], [y - r, x + r], [y + r, x + r], [y + r, x - r]])
            shapes.append((box, "ellipse", False))
        elif kind in ("MultiPolygon", "MultiLineString", "MultiPoint", "GeometryCollection"):
            shapes += napari_shapes(part, point_radius)
    return shapes


def shape_geometry(xy: np.ndarray, shape_type: str, as_point: bool) -> BaseGeometry | None:
    """The geometry of one napari shape, from its vertices ``(x, y)``."""
    if as_point:
        return shapely.Point(xy.mean(axis=0))
    if shape_type in ("path", "line"):
        return shapely.LineString(xy) if len(xy) >= 2 else None
    if shape_type == "ellipse":
        centre = xy.mean(axis=0)
        u, v = (xy[1] - xy[0]) / 2, (xy[3] - xy[0]) / 2
        t = np.linspace(0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)[:, None]
        xy = centre + np.cos(t) * u + np.sin(t) * v
    if len(xy) < 3:
        return None
    polygon = shapely.Polygon(xy)
    return polygon if polygon.is_valid else shapely.make_valid(polygon)
