"""The GeoJSON features of a file, as QuPath lays them out: low-level reading helpers.

:mod:`slidescope.app.annotations.geojson` is the public face; this module exists so the
annotation readers and writers can share these helpers without importing each other.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slidescope.app.errors import SlideScopeError


class GeoJSONError(SlideScopeError):
    """A GeoJSON file cannot be read or is not made of features this app understands."""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (as it was, after).

    Parsing a large GeoJSON file makes hundreds of thousands of lists and dicts, and each
    few hundred of them trigger a collection that walks every object the process holds: in
    the window, with napari's ~250,000, that doubles the time to read 5,000 QuPath polygons
    (0.85-1.0 s -> 0.45 s without). Nothing the block makes is cyclic garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def classification_of(feature: dict[str, Any]) -> str | None:
    """The class name of a feature (QuPath's ``properties.classification.name``), or None.

    Older QuPath exports store the class as a plain string; that is read too.
    """
    properties = feature.get("properties") or {}
    value = properties.get("classification")
    if isinstance(value, dict):
        name = value.get("name")
        return str(name) if name is not None else None
    if isinstance(value, str):
        return value
    return None


def iter_features(geojson: dict[str, Any] | list[Any]) -> Iterator[dict[str, Any]]:
    """Every Feature in a FeatureCollection, a list of Features, a Feature or a geometry."""
    if isinstance(geojson, list):
        for item in geojson:
            yield from iter_features(item)
        return
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        for item in geojson.get("features") or []:
            yield from iter_features(item)
    elif kind == "Feature":
        yield geojson
    elif kind in ("Polygon", "MultiPolygon", "GeometryCollection", "Point", "LineString"):
        yield {"type": "Feature", "geometry": geojson, "properties": {}}
    else:
        raise GeoJSONError(f"not a GeoJSON feature or geometry (type {kind!r})")


def load_json(path: str | Path) -> Any:
    """Parse a file as JSON, or raise :class:`GeoJSONError` naming the file and the reason."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise GeoJSONError(f"{path}: file not found") from None
    except OSError as error:
        raise GeoJSONError(f"{path}: cannot be read ({error.strerror or error})") from error
    if not text.strip():
        raise GeoJSONError(f"{path}: the file is empty")
    try:
        with collector_paused():
            return json.loads(text)
    except UnicodeDecodeError:
        raise GeoJSONError(f"{path}: not a text file, so not GeoJSON") from None
    except json.JSONDecodeError as error:
        raise GeoJSONError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "the file may be cut short or not GeoJSON"
        ) from None
    except RecursionError:
        raise GeoJSONError(f"{path}: nested too deeply to be GeoJSON") from None
