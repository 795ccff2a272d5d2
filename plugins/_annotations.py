"""Annotations in plain napari: a ``.geojson`` reader, a Shapes writer, and the dock.

- Reader: a QuPath GeoJSON file becomes a Shapes layer placed on the open slide (level-0
  pixels scaled by the slide's microns per pixel), coloured and labelled by class.
- Writer: any Shapes layer as a QuPath FeatureCollection in level-0 pixels (its class per
  shape from a ``class`` feature, when it has one).
- Dock: the desktop window's Annotations dock, following the slide layer the plugin's
  reader opened (annotations saved beside the user's data, keyed by the slide).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from slidescope.app.annotations.annotation_io import read_annotations, write_annotations
from slidescope.app.annotations.classes import class_color
from slidescope.app.annotations.model import Annotation, AnnotationSet
from slidescope.app.display.placement import SlideSpace, shapes_placement
from slidescope.app.display.slide_layer import METADATA_KEY

LayerData = tuple[Any, dict[str, Any], str]
GEOJSON_SUFFIXES = (".geojson",)


# -- the open slide ------------------------------------------------------------------------


def _slide_layer(viewer: Any) -> Any:
    """The top-most SlideScope slide layer of a viewer, or None."""
    if viewer is None:
        return None
    for layer in reversed(list(viewer.layers)):
        if METADATA_KEY in getattr(layer, "metadata", {}):
            return layer
    return None


def _identity(layer: Any) -> dict[str, Any] | None:
    return layer.metadata[METADATA_KEY].get("identity") if layer is not None else None


def _space(identity: dict[str, Any] | None) -> SlideSpace:
    mpp = (identity or {}).get("mpp")
    return SlideSpace((float(mpp[0]), float(mpp[1])) if mpp else None)


# -- reader --------------------------------------------------------------------------------


def get_annotation_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """napari's reader hook for ``.geojson`` files (None for anything else)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(str(p).lower().endswith(GEOJSON_SUFFIXES) for p in paths):
        return None
    return read_annotation_layers


def read_annotation_layers(path: str | list[str]) -> list[LayerData]:
    """QuPath GeoJSON files as Shapes layers on the open slide (clipped to it)."""
    import napari

    paths = [path] if isinstance(path, str) else list(path)
    identity = _identity(_slide_layer(napari.current_viewer()))
    size = (identity["width"], identity["height"]) if identity else None
    layers = []
    for p in paths:
        annotations, _report = read_annotations(p, slide_dimensions=size)
        layers.append(annotation_layer_data(annotations, _space(identity), Path(p).stem))
    return layers


def annotation_layer_data(annotations: AnnotationSet, space: SlideSpace, name: str) -> LayerData:
    """A Shapes layer-data tuple of annotations (level-0 ``(y, x)`` data, placed on the slide)."""
    from slidescope.app.ui.annotation_layer import FILL_ALPHA, napari_shapes_of

    data, types, edges, faces, classes, ids = [], [], [], [], [], []
    every = napari_shapes_of([a.geometry for a in annotations], point_radius=8.0)
    for a, shapes in zip(annotations, every):
        r, g, b = (c / 255 for c in class_color(a.classification))
        for vertices, shape_type, filled in shapes:
            data.append(vertices)
            types.append(shape_type)
            edges.append((r, g, b, 1.0))
            faces.append((r, g, b, FILL_ALPHA) if filled else (0, 0, 0, 0))
            classes.append(a.classification or "")
            ids.append(a.id)
    kwargs: dict[str, Any] = {
        "name": name,
        "shape_type": types,
        "edge_color": np.asarray(edges) if edges else "red",
        "face_color": np.asarray(faces) if faces else "transparent",
        "features": {"class": classes, "id": ids},
        "metadata": {"slidescope_level0": True},
        **shapes_placement(space).kwargs,
    }
    return (data, kwargs, "shapes")


# -- writer --------------------------------------------------------------------------------


def write_shapes_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """napari's writer hook: a Shapes layer as QuPath GeoJSON in level-0 pixels."""
    import napari

    target = Path(path)
    if not target.name.lower().endswith(GEOJSON_SUFFIXES):
        target = target.with_name(target.name + ".geojson")
    metadata = attributes.get("metadata") or {}
    identity = _identity(_slide_layer(napari.current_viewer()))
    scale = np.asarray(attributes.get("scale", (1.0, 1.0)), dtype=float)[-2:]
    translate = np.asarray(attributes.get("translate", (0.0, 0.0)), dtype=float)[-2:]
    per_pixel = np.asarray(_space(identity).per_pixel)
    level0 = metadata.get("slidescope_level0") or metadata.get("slidescope_annotations")
    features = attributes.get("features")
    classes = list(features["class"]) if features is not None and "class" in features else None
    ids = list(features["id"]) if features is not None and "id" in features else None
    types = attributes.get("shape_type") or ["polygon"] * len(data)
    parts: dict[str, list[tuple[str, np.ndarray]]] = {}
    names: dict[str, str | None] = {}
    for i, (vertices, shape_type) in enumerate(zip(data, types)):
        yx = np.asarray(vertices, dtype=float)[:, -2:]
        if not level0:  # data -> world (µm or px) -> level-0 px of the open slide
            yx = (yx * scale + translate) / per_pixel
        key = str(ids[i]) if ids and ids[i] else f"shape-{i}"
        parts.setdefault(key, []).append((shape_type, yx[:, ::-1]))
        names.setdefault(key, (classes[i] if classes else "") or None)
    annotations = []
    for key, shapes in parts.items():
        geometry = _joined(shapes)
        if geometry is not None and not geometry.is_empty:
            id_kwargs = {} if key.startswith("shape-") else {"id": key}
            annotations.append(Annotation(geometry, names[key], **id_kwargs))
    write_annotations(target, annotations, slide_identity=identity, keep_backup=False)
    return [str(target)]


def _joined(shapes: list[tuple[str, np.ndarray]]) -> Any:
    """One geometry from the napari shapes of one annotation: areas minus closed paths
    (holes, as the reader splits them), or the lines."""
    from slidescope.app.ui.annotation_layer import shape_geometry

    areas = [
        shape_geometry(xy, t, as_point=False) for t, xy in shapes if t not in ("path", "line")
    ]
    areas = [g for g in areas if g is not None]
    paths = [xy for t, xy in shapes if t in ("path", "line")]
    if areas:
        area = shapely.union_all(areas)
        holes = [
            shapely.Polygon(xy) for xy in paths if len(xy) >= 4 and np.allclose(xy[0], xy[-1])
        ]
        return area.difference(shapely.union_all(holes)) if holes else area
    lines = [shapely.LineString(xy) for xy in paths if len(xy) >= 2]
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else shapely.multilinestrings(lines)


# -- dock ----------------------------------------------------------------------------------


class _ViewerSlide:
    """What the annotation session needs of a slide, from a slide layer's metadata."""

    def __init__(self, layer: Any) -> None:
        from slidescope.app.slides.slide import SlideIdentity

        info = layer.metadata[METADATA_KEY]
        self.path = Path(info["path"])
        self.identity = SlideIdentity.from_dict(info["identity"])
        self.dimensions = (self.identity.width, self.identity.height)
        self.mpp = self.identity.mpp


class _Shown:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.slide = _ViewerSlide(layer)


class ViewerSlides:
    """The slide on screen in a plain napari viewer: the top-most SlideScope slide layer.

    Offers what :class:`~slidescope.app.ui.annotation_session.AnnotationSession` uses of a
    :class:`~slidescope.app.ui.slide_session.SlideSession` (``viewer``, ``listeners``,
    ``current``, ``project``, ``go_to``).
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.project = None
        self.current: _Shown | None = None
        self.listeners: list[Callable[[Any], None]] = []
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)

    def _layers_changed(self, _event: Any = None) -> None:
        layer = _slide_layer(self.viewer)
        if (layer is None and self.current is None) or (
            self.current is not None and layer is self.current.layer
        ):
            return
        self.current = None
        for listener in list(self.listeners):
            listener(None)
        if layer is not None:
            self.current = _Shown(layer)
            for listener in list(self.listeners):
                listener(self.current)

    def go_to(self, x: float, y: float) -> None:
        if self.current is not None:
            self.viewer.scene.camera.center = SlideSpace.of(self.current.slide).to_world(x, y)
