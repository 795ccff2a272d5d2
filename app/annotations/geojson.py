"""GeoJSON annotations in level-0 pixels, as QuPath reads and writes them.

A file is a FeatureCollection (QuPath also writes a bare list of Features, or a single
Feature; all are read). A feature's class is ``properties.classification.name`` (with an
optional ``color`` ``[r, g, b]``); QuPath's ``objectType`` (``"annotation"``,
``"detection"``) is kept. Coordinates are level-0 pixels, ``(x, y)``, y down. Writes are
atomic (:mod:`slidescope.models.files`): a sibling temp file is written, then renamed over
the target.

:func:`read_annotations` / :func:`write_annotations` move whole
:class:`~slidescope.app.annotations.model.AnnotationSet` objects in and out, repairing
what can safely be repaired (see :mod:`slidescope.app.annotations.repair`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.annotations.annotation_io import (
    RepairReport,
    annotation_feature,
    annotations_geojson_text,
    read_annotations,
    write_annotations,
)
from slidescope.app.annotations.features import (
    GeoJSONError,
    classification_of,
    iter_features,
    load_json,
)
from slidescope.models.files import atomic_path


def polygon_feature(
    rings: Sequence[np.ndarray | Sequence[Sequence[float]]],
    classification: str | None = None,
    color: tuple[int, int, int] | None = None,
    properties: dict[str, Any] | None = None,
    object_type: str = "annotation",
) -> dict[str, Any]:
    """A GeoJSON Polygon Feature from ``[exterior, *holes]`` rings of (x, y) level-0 px.

    Rings are closed if they are not already; coordinates are rounded to 1/100 px to keep
    files small.
    """
    coordinates = []
    for ring in rings:
        xy = np.asarray(ring, dtype=float).reshape(-1, 2)
        if len(xy) and not np.allclose(xy[0], xy[-1]):
            xy = np.vstack([xy, xy[:1]])
        coordinates.append(np.round(xy, 2).tolist())
    props: dict[str, Any] = {"objectType": object_type, **(properties or {})}
    if classification is not None:
        props["classification"] = {"name": classification}
        if color is not None:
            props["classification"]["color"] = [int(c) for c in color]
    return {
        "type": "Feature",
        "id": str(uuid.uuid4()),
        "geometry": {"type": "Polygon", "coordinates": coordinates},
        "properties": props,
    }


def feature_collection(features: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Wrap features in a FeatureCollection."""
    return {"type": "FeatureCollection", "features": list(features)}


def iter_polygons(
    geojson: dict[str, Any] | list[Any], classification: str | None = None
) -> Iterator[list[np.ndarray]]:
    """The polygons of every feature as ``[exterior, *holes]`` (n, 2) arrays of (x, y).

    MultiPolygons and GeometryCollections are split; points and lines are skipped. When
    ``classification`` is given, only features of that class are read.
    """
    for feature in iter_features(geojson):
        if classification is not None and classification_of(feature) != classification:
            continue
        yield from _geometry_polygons(feature.get("geometry"))


def _geometry_polygons(geometry: dict[str, Any] | None) -> Iterator[list[np.ndarray]]:
    if not geometry:
        return
    kind = geometry.get("type")
    if kind == "Polygon":
        yield [np.asarray(r, dtype=float)[:, :2] for r in geometry["coordinates"] if len(r)]
    elif kind == "MultiPolygon":
        for polygon in geometry["coordinates"]:
            yield [np.asarray(r, dtype=float)[:, :2] for r in polygon if len(r)]
    elif kind == "GeometryCollection":
        for part in geometry.get("geometries") or []:
            yield from _geometry_polygons(part)


def read_geojson(path: str | Path) -> dict[str, Any]:
    """Read a GeoJSON file as a FeatureCollection (lists and single features are wrapped)."""
    path = Path(path)
    data = load_json(path)
    try:
        features = list(iter_features(data))
    except GeoJSONError as error:
        raise GeoJSONError(f"{path}: {error}") from None
    except (AttributeError, TypeError) as error:
        raise GeoJSONError(f"{path}: not a GeoJSON FeatureCollection ({error})") from error
    return feature_collection(features)


def write_geojson(path: str | Path, geojson: dict[str, Any] | Sequence[dict[str, Any]]) -> Path:
    """Write a FeatureCollection (or a list of features) atomically; returns the path."""
    path = Path(path)
    data = geojson if isinstance(geojson, dict) else feature_collection(list(geojson))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


__all__ = [
    "GeoJSONError",
    "RepairReport",
    "annotation_feature",
    "annotations_geojson_text",
    "classification_of",
    "feature_collection",
    "iter_features",
    "iter_polygons",
    "load_json",
    "polygon_feature",
    "read_annotations",
    "read_geojson",
    "write_annotations",
    "write_geojson",
]
