"""Patch scores and thresholded contours as a GeoJSON FeatureCollection QuPath imports.

Every patch is a ``tile`` Feature (its level-0 square) whose ``properties.measurements``
hold its scores as QuPath writes measurements (a name -> number map); each contour is an
``annotation`` Feature classified ``"<score> >= <threshold>"``. The collection's
``properties`` (a foreign member QuPath ignores) carry the slide identity, mpp and display
choices. Coordinates are level-0 pixels, as QuPath's own exports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.analysis.heatmaps import HeatmapGrid, contours
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.models.files import write_text_atomic


def patch_features_json(
    coords: np.ndarray, size: int, measurements: Mapping[str, np.ndarray]
) -> list[str]:
    """One ``tile`` Feature per patch, as JSON text, its scores as QuPath measurements.

    Formatted as text, one ``%`` per patch, rather than through ``json.dumps`` of 20,000
    dicts: the export of a whole slide stays well under a second.
    """
    names = list(measurements)
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    n = len(coords)
    values = np.column_stack(
        [np.asarray(measurements[k], dtype=np.float64).reshape(n) for k in names]
    ) if names else np.zeros((n, 0))  # fmt: skip
    finite = bool(np.isfinite(values).all())
    # %.6g of a finite float is valid JSON; JSON has no NaN, so a missing score is null
    slot = "%.6g" if finite else "%s"
    scores = ",".join(f"{json.dumps(k).replace('%', '%%')}:{slot}" for k in names)
    template = (
        '{"type":"Feature","geometry":{"type":"Polygon","coordinates":'
        "[[[%d,%d],[%d,%d],[%d,%d],[%d,%d],[%d,%d]]]},"
        '"properties":{"objectType":"tile","measurements":{' + scores + "}}}"
    )
    if finite:
        rows = values.tolist()
    else:
        columns = [
            [f"{v:.6g}" if math.isfinite(v) else "null" for v in c] for c in values.T.tolist()
        ]
        rows = [list(r) for r in zip(*columns)] if columns else [[] for _ in range(n)]
    return [
        template % (x, y, x + size, y, x + size, y + size, x, y + size, x, y, *row)
        for (x, y), row in zip(coords.tolist(), rows)
    ]


def contour_features(grid: HeatmapGrid, threshold: float, name: str) -> list[dict[str, Any]]:
    """One ``annotation`` Feature per region of ``grid`` at or above ``threshold``."""
    label = f"{name} >= {threshold:g}"
    features = []
    for polygon in contours(grid, threshold):
        rings = [np.round(ring, 1).tolist() for ring in polygon]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": rings},
                "properties": {
                    "objectType": "annotation",
                    "name": label,
                    "classification": {"name": label},
                    "isLocked": True,
                },
            }
        )
    return features


def write_geojson(
    path: str | Path,
    analysis: SlideAnalysis,
    measurements: Mapping[str, np.ndarray],
    contour_grids: Mapping[str, tuple[HeatmapGrid, float]],
    metadata: dict[str, Any],
) -> Path:
    """Write patches with their scores and the contours of chosen layers.

    Parameters
    ----------
    path : path
        The ``.geojson`` to write (atomically).
    analysis : SlideAnalysis
        Gives the patches' level-0 corners and size.
    measurements : mapping
        Name -> (N,) scores stored on every patch.
    contour_grids : mapping
        Layer name -> (displayed grid, threshold) whose contours are added.
    metadata : dict
        The collection's ``properties``.
    """
    features = patch_features_json(analysis.coords, analysis.patch_size_level0, measurements)
    for name, (grid, threshold) in contour_grids.items():
        features.extend(
            json.dumps(f, separators=(",", ":")) for f in contour_features(grid, threshold, name)
        )
    text = (
        '{"type":"FeatureCollection","properties":'
        + json.dumps(metadata, separators=(",", ":"))
        + ',"features":['
        + ",".join(features)
        + "]}"
    )
    path = Path(path)
    write_text_atomic(path, text)
    return path
