"""A region of interest: read and checked once per run, burnt into a mask in linear time.

A ROI file is GeoJSON polygons in level-0 pixels. :func:`load_roi` parses it once per
process (a batch worker reuses it for every slide) and refuses what cannot be meant:
coordinates that are not finite numbers, no polygon at all. :meth:`RegionOfInterest.check_on`
refuses a ROI that lies outside a slide. :func:`rasterize_polygons` is a vectorised
even-odd scanline fill: its cost grows with the vertices plus the mask's rows and the
ring crossings of each row, never vertices × pixels (a 10⁶-vertex outline took minutes
with a per-pixel point-in-polygon test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.errors import SlideScopeError


class RoiError(SlideScopeError):
    """A region-of-interest file that cannot be used as asked."""


@dataclass(frozen=True)
class RegionOfInterest:
    """The polygons of a ROI file, each ``[exterior, *holes]`` as (n, 2) level-0 (x, y)."""

    path: Path
    polygons: tuple[tuple[np.ndarray, ...], ...]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of every vertex."""
        points = np.concatenate([ring for polygon in self.polygons for ring in polygon])
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    def check_on(self, slide_size: tuple[int, int], slide_name: str) -> None:
        """Raise :class:`RoiError` when the ROI does not overlap a slide of ``slide_size``."""
        x0, y0, x1, y1 = self.bounds
        width, height = slide_size
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise RoiError(
                f"{self.path}: the region of interest ({x0:.0f}, {y0:.0f})-({x1:.0f}, "
                f"{y1:.0f}) lies outside {slide_name} ({width} x {height} px); ROI "
                "coordinates are level-0 pixels of the slide"
            )

    def mask(self, shape: tuple[int, int], downsample: float) -> np.ndarray:
        """The ROI burnt into a boolean mask of ``shape`` whose pixels are ``downsample`` wide."""
        return rasterize_polygons(self.polygons, shape, downsample)


_CACHE: dict[tuple[str, int, int], RegionOfInterest] = {}


def load_roi(path: str | Path) -> RegionOfInterest:
    """Read and check a ROI file, once per process (keyed by path, size and mtime).

    Raises
    ------
    RoiError
        Unreadable, no polygon, or coordinates that are not finite numbers.
    """
    from slidescope.app.annotations.geojson import GeoJSONError, iter_polygons, read_geojson

    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise RoiError(f"{path}: no such region-of-interest file") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    try:
        polygons = tuple(tuple(rings) for rings in iter_polygons(read_geojson(path)) if rings)
    except GeoJSONError as error:
        message = str(error)
        raise RoiError(message if str(path) in message else f"{path}: {message}") from None
    except (ValueError, TypeError, IndexError) as error:
        raise RoiError(f"{path}: polygon coordinates are not pairs of numbers ({error})") from None
    if not polygons:
        raise RoiError(f"{path}: holds no polygon; a region of interest must outline an area")
    for rings in polygons:
        for ring in rings:
            if ring.ndim != 2 or ring.shape[1] != 2 or not np.isfinite(ring).all():
                raise RoiError(
                    f"{path}: a polygon has coordinates that are not finite numbers "
                    "(NaN or infinity); fix or redraw the region of interest"
                )
    if len(_CACHE) > 8:
        _CACHE.clear()
    roi = _CACHE[key] = RegionOfInterest(path, polygons)
    return roi


def rasterize_polygons(
    polygons: Sequence[Sequence[np.ndarray]], shape: tuple[int, int], downsample: float
) -> np.ndarray:
    """Burn polygons (level-0 px, holes removed) into a mask; a pixel is in when its centre is.

    Each polygon is filled by the even-odd rule over its rings (so holes cut out), and the
    polygons are united.
    """
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    for rings in polygons:
        mask |= _fill_even_odd([np.asarray(r, float) / downsample for r in rings], height, width)
    return mask


def _fill_even_odd(rings: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Even-odd fill of closed rings (mask pixel units): crossings of each row's centre line."""
    starts, ends = [], []
    for ring in rings:
        if len(ring) < 3:
            continue
        starts.append(ring)
        ends.append(np.roll(ring, -1, axis=0))  # closes the ring whether or not it repeats
    if not starts:
        return np.zeros((height, width), bool)
    a, b = np.concatenate(starts), np.concatenate(ends)
    low, high = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    # rows r whose centre r + 0.5 lies in [low, high): half-open, so a vertex counts once
    first = np.clip(np.ceil(low - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(high - 0.5), 0, height).astype(np.int64)
    count = np.maximum(stop - first, 0)
    edge = np.repeat(np.arange(len(a)), count)
    if edge.size == 0:
        return np.zeros((height, width), bool)
    offset = np.arange(edge.size) - np.repeat(np.cumsum(count) - count, count)
    row = first[edge] + offset
    ya, yb, xa, xb = a[edge, 1], b[edge, 1], a[edge, 0], b[edge, 0]
    x = xa + (row + 0.5 - ya) * (xb - xa) / (yb - ya)
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    # pair the crossings of each row in order: (1st, 2nd), (3rd, 4th), ...
    rank = np.arange(row.size) - np.searchsorted(row, row, side="left")
    enter = rank % 2 == 0
    exits = np.flatnonzero(enter) + 1
    valid = exits < row.size
    enter_at = np.flatnonzero(enter)[valid]
    exit_at = exits[valid]
    same_row = row[enter_at] == row[exit_at]
    enter_at, exit_at = enter_at[same_row], exit_at[same_row]
    # pixel c is in when x_enter <= c + 0.5 < x_exit
    col0 = np.clip(np.ceil(x[enter_at] - 0.5), 0, width).astype(np.int64)
    col1 = np.clip(np.ceil(x[exit_at] - 0.5), 0, width).astype(np.int64)
    runs = np.zeros((height, width + 1), np.int32)
    np.add.at(runs, (row[enter_at], col0), 1)
    np.add.at(runs, (row[enter_at], col1), -1)
    return np.cumsum(runs, axis=1)[:, :width] > 0


def as_roi(roi: RegionOfInterest | dict[str, Any] | None) -> RegionOfInterest | None:
    """A GeoJSON object given in memory (the window's drawn ROI) as a RegionOfInterest."""
    if roi is None or isinstance(roi, RegionOfInterest):
        return roi
    from slidescope.app.annotations.geojson import iter_polygons

    polygons = tuple(tuple(rings) for rings in iter_polygons(roi) if rings)
    return RegionOfInterest(Path("<region of interest>"), polygons)
