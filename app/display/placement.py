"""Where layers go: ``scale`` and ``translate`` for the slide and everything laid over it.

One world for every layer of a slide: **micrometres from the slide's top-left corner**
(or level-0 pixels when the slide does not say its microns per pixel). A point at
continuous level-0 position ``(x, y)`` — pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``,
as in GeoJSON and QuPath — lies at world ``(y * mpp_y, x * mpp_x)`` (napari's axis order is
``(row, column)``). napari puts the *centre* of data pixel ``k`` at ``translate + k *
scale``, so every raster layer is shifted by half of its own pixel.

Every function here takes level-0 geometry (the units of feature ``coords``, GeoJSON and
export CSVs) and returns a :class:`Placement` to splat into a layer's keyword arguments::

    space = SlideSpace.of(slide)
    viewer.add_image(scores_grid, **grid_placement(space, origin=(x0, y0), patch_size=256).kwargs)
    viewer.add_shapes(polygons_yx, **shapes_placement(space).kwargs)

The functions are pure (no napari import), so the heatmap and export code can use them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class _HasMpp(Protocol):
    @property
    def mpp(self) -> tuple[float, float] | None: ...


@dataclass(frozen=True)
class SlideSpace:
    """The world of one slide: how many world units one level-0 pixel is.

    Attributes
    ----------
    mpp : tuple of float or None
        Microns per pixel (x, y) at level 0; None when the slide does not say.
    """

    mpp: tuple[float, float] | None

    @classmethod
    def of(cls, slide: _HasMpp) -> SlideSpace:
        """The space of a :class:`~slidescope.app.slides.slide.Slide` (or anything with ``mpp``)."""
        mpp = slide.mpp
        return cls((float(mpp[0]), float(mpp[1])) if mpp else None)

    @property
    def per_pixel(self) -> tuple[float, float]:
        """World units per level-0 pixel, napari order ``(y, x)``."""
        if self.mpp is None:
            return (1.0, 1.0)
        return (self.mpp[1], self.mpp[0])

    @property
    def unit(self) -> str:
        """The world unit, as napari's ``Layer.units`` (pint) spells it."""
        return "pixel" if self.mpp is None else "micrometer"

    def to_world(self, x: float, y: float) -> tuple[float, float]:
        """World ``(row, col)`` of continuous level-0 ``(x, y)``."""
        sy, sx = self.per_pixel
        return (y * sy, x * sx)

    def to_level0(self, world: tuple[float, ...] | np.ndarray) -> tuple[float, float]:
        """Continuous level-0 ``(x, y)`` of a world position (its last two axes)."""
        sy, sx = self.per_pixel
        return (float(world[-1]) / sx, float(world[-2]) / sy)

    def pixel_at(self, world: tuple[float, ...] | np.ndarray) -> tuple[int, int]:
        """The level-0 pixel ``(x, y)`` that contains a world position."""
        x, y = self.to_level0(world)
        return (math.floor(x), math.floor(y))


@dataclass(frozen=True)
class Placement:
    """A layer's ``scale`` and ``translate`` (napari order, ``(y, x)``) and its units."""

    scale: tuple[float, float]
    translate: tuple[float, float]
    units: tuple[str, str]

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``viewer.add_*`` or a layer-data tuple's metadata."""
        return {"scale": self.scale, "translate": self.translate, "units": self.units}

    def apply(self, layer: Any) -> None:
        """Set an existing layer's scale, translate and units."""
        layer.scale = self.scale
        layer.translate = self.translate
        layer.units = self.units


def slide_placement(space: SlideSpace) -> Placement:
    """The slide's multiscale image layer: level 0 at one pixel per level-0 pixel.

    napari derives the coarser levels' placement from their shapes and centres each of
    their pixels on its level-0 footprint, so every level lines up with level 0 (checked
    pixel for pixel against ``read_region`` in tests/ui/test_main_window.py).
    """
    sy, sx = space.per_pixel
    return Placement((sy, sx), (0.5 * sy, 0.5 * sx), (space.unit, space.unit))


def grid_placement(
    space: SlideSpace,
    origin: tuple[float, float],
    patch_size: float | tuple[float, float],
) -> Placement:
    """An image whose pixel ``[r, c]`` is the patch at ``origin + (c, r) * patch_size``.

    Parameters
    ----------
    space : SlideSpace
        The slide's space.
    origin : tuple of float
        Level-0 ``(x, y)`` of the top-left corner of grid cell ``[0, 0]``.
    patch_size : float or tuple of float
        The patch (grid step) in level-0 pixels, or ``(width, height)``.

    Returns
    -------
    Placement
        Each heatmap pixel exactly covers its patch's level-0 square.
    """
    if isinstance(patch_size, (int, float, np.integer, np.floating)):
        pw = ph = float(patch_size)
    else:
        pw, ph = (float(v) for v in patch_size)
    sy, sx = space.per_pixel
    ox, oy = origin
    return Placement(
        (float(ph) * sy, float(pw) * sx),
        ((oy + ph / 2.0) * sy, (ox + pw / 2.0) * sx),
        (space.unit, space.unit),
    )


def shapes_placement(space: SlideSpace) -> Placement:
    """Shapes or points whose data are continuous level-0 ``(y, x)`` coordinates.

    A polygon of GeoJSON/QuPath vertices ``(x, y)`` is given to napari as ``[[y, x], ...]``
    with this placement; a point at the centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``.
    """
    sy, sx = space.per_pixel
    return Placement((sy, sx), (0.0, 0.0), (space.unit, space.unit))


def level_placement(space: SlideSpace, downsample: float) -> Placement:
    """A single image of one pyramid level (``downsample`` level-0 pixels per pixel)."""
    return grid_placement(space, (0.0, 0.0), downsample)


def grid_shape(
    coords: np.ndarray, patch_size: float
) -> tuple[tuple[float, float], tuple[int, int], np.ndarray]:
    """The smallest grid holding every patch of ``coords``: origin, shape and cell indices.

    Parameters
    ----------
    coords : (N, 2) array
        Level-0 ``(x, y)`` of each patch's top-left corner (the feature file's ``coords``),
        on a regular grid of step ``patch_size``.
    patch_size : float
        The grid step in level-0 pixels.

    Returns
    -------
    origin : tuple of float
        Level-0 ``(x, y)`` of cell ``[0, 0]``.
    shape : tuple of int
        ``(rows, cols)``.
    cells : (N, 2) int array
        ``(row, col)`` of each patch, for ``grid[cells[:, 0], cells[:, 1]] = scores``.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(coords) == 0:
        return (0.0, 0.0), (0, 0), np.zeros((0, 2), dtype=np.int64)
    x0, y0 = coords.min(axis=0)
    cols = np.rint((coords[:, 0] - x0) / patch_size).astype(np.int64)
    rows = np.rint((coords[:, 1] - y0) / patch_size).astype(np.int64)
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    return (float(x0), float(y0)), shape, np.stack([rows, cols], axis=1)
