"""A heatmap as a pyramidal image that lies exactly over the slide in other viewers.

Why a coarse level and not the slide's level-0 size: a heatmap holds one value per patch, so
a level-0-sized overlay repeats each value over e.g. 256 x 256 pixels; for a 100,000-pixel
slide that is gigabytes written per kind and slide, for no extra information, and batch
export would take minutes per slide instead of well under a second. Instead the overlay's
pixel is one lattice step of the patch grid (``pixel`` level-0 px, normally the patch
stride), its image starts at the slide's level-0 corner (0, 0) and spans the whole slide,
and its physical pixel size is ``pixel × mpp``. A viewer that reads physical sizes places it
exactly: QuPath (OME-TIFF, µm per pixel, origin at the corner) and napari through
napari-ome-zarr (OME-Zarr with a ``scale`` and, for napari's pixel-centre convention, a
``translation`` of half an overlay pixel minus half a slide pixel, relative to the slide
opened the same way). The pixel size in level-0
px is also stored (``level0_pixel_size``) for viewers in level-0 units, and coarser levels
(halving) make the pyramid.

- OME-TIFF: RGBA (colormap and opacity applied), pyramid in SubIFDs, OME-XML with the
  physical pixel size and a MapAnnotation/Description holding the provenance JSON.
- OME-Zarr (NGFF 0.4): the displayed scores as float32 (NaN off tissue), so napari shows the
  values and lets the user choose the colormap; provenance in the group's attributes.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.analysis.heatmaps import HeatmapGrid, colorize, value_range
from slidescope.app.slides.ngff import multiscales_entry
from slidescope.models.files import atomic_path

MIN_LEVEL_SIDE = 64
TILE = 256


def overlay_pixel(grid: HeatmapGrid) -> int:
    """Level-0 px per overlay pixel: the largest step on which every cell edge falls.

    A grid anchored at a multiple of its cell (as patch grids from the slide's corner are)
    gives the cell itself.
    """
    return max(1, math.gcd(grid.cell, grid.origin[0] % grid.cell, grid.origin[1] % grid.cell))


def overlay_values(grid: HeatmapGrid, slide_size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """The grid on a raster of the whole slide from (0, 0): (values, level-0 px per pixel)."""
    pixel = overlay_pixel(grid)
    width, height = (math.ceil(s / pixel) for s in slide_size)
    out = np.full((height, width), np.nan, dtype=np.float32)
    if grid.values.size == 0:
        return out, pixel
    repeat = grid.cell // pixel
    block = np.repeat(np.repeat(grid.values, repeat, axis=0), repeat, axis=1)
    x0, y0 = grid.origin[0] // pixel, grid.origin[1] // pixel
    # a grid hanging over the slide's right or bottom edge is cut at the raster's edge
    h = max(0, min(block.shape[0], height - y0))
    w = max(0, min(block.shape[1], width - x0))
    out[y0 : y0 + h, x0 : x0 + w] = block[:h, :w]
    return out, pixel


def pyramid(image: np.ndarray) -> list[np.ndarray]:
    """``image`` and its halvings (nearest, so every pixel keeps a real score or colour)."""
    levels = [image]
    while max(levels[-1].shape[:2]) > 2 * MIN_LEVEL_SIDE:
        levels.append(levels[-1][::2, ::2])
    return levels


def write_ome_tiff_overlay(
    path: str | Path,
    grid: HeatmapGrid,
    slide_size: tuple[int, int],
    mpp: tuple[float, float] | None,
    metadata: dict[str, Any],
    *,
    colormap: str = "turbo",
    opacity: float = 0.5,
    vrange: tuple[float, float] | None = None,
) -> Path:
    """Write the heatmap as a pyramidal RGBA OME-TIFF spanning the whole slide.

    Parameters
    ----------
    path : path
        ``*.ome.tif`` to write (atomically).
    grid : HeatmapGrid
        The displayed scores.
    slide_size : tuple of int
        Level-0 (width, height).
    mpp : tuple of float or None
        The slide's level-0 microns per pixel; without it no physical size is written and
        ``level0_pixel_size`` alone places the overlay.
    metadata : dict
        Provenance stored in the OME-XML.
    """
    import tifffile

    values, pixel = overlay_values(grid, slide_size)
    low, high = vrange if vrange is not None else value_range(grid.values)
    rgba = colorize(values, colormap, vmin=low, vmax=high, opacity=opacity)
    levels = pyramid(rgba)
    meta = {**metadata, "level0_pixel_size": pixel, "overlay": "rgba", "value_range": [low, high]}
    ome: dict[str, Any] = {
        "axes": "YXS",
        "Name": str(metadata.get("layer", "heatmap")),
        "Description": json.dumps(meta),
        "MapAnnotation": {"Value": {"slidescope": json.dumps(meta)}},
    }
    if mpp is not None:
        ome.update(
            PhysicalSizeX=mpp[0] * pixel,
            PhysicalSizeXUnit="µm",
            PhysicalSizeY=mpp[1] * pixel,
            PhysicalSizeYUnit="µm",
        )
    path = Path(path)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, ome=True) as tif:
        for index, level in enumerate(levels):
            tiled = min(level.shape[:2]) >= TILE
            options: dict[str, Any] = {
                "photometric": "rgb",
                "extrasamples": ["unassalpha"],
                "compression": "zlib",
                "compressionargs": {"level": 1},
                "tile": (TILE, TILE) if tiled else None,
            }
            if index == 0:
                tif.write(level, subifds=len(levels) - 1, metadata=ome, **options)
            else:
                tif.write(level, subfiletype=1, metadata=None, **options)
    return path


def write_ome_zarr_overlay(
    path: str | Path,
    grid: HeatmapGrid,
    slide_size: tuple[int, int],
    mpp: tuple[float, float] | None,
    metadata: dict[str, Any],
) -> Path:
    """Write the displayed scores as a pyramidal OME-Zarr (NGFF 0.4) spanning the slide.

    Axes ``y, x`` in micrometres (level-0 px when the slide has no mpp); level ``k`` has
    scale ``pixel × 2^k × mpp`` and the half-pixel translation napari's pixel-centre
    convention needs to put each value over its patch.
    """
    import zarr

    values, pixel = overlay_values(grid, slide_size)
    levels = pyramid(values)
    per_px = (mpp[1], mpp[0]) if mpp is not None else (1.0, 1.0)
    unit = "micrometer" if mpp is not None else "pixel"
    # Level k's pixel is ``step = pixel * 2**k`` level-0 px. napari centres data pixel i at
    # ``translate + i * scale`` while a slide opened the same way has its level-0 pixel j
    # centred at ``j * mpp``: the overlay must move by (step - 1) / 2 level-0 px. The common
    # part, (pixel - 1) / 2, is the multiscale's own translation (napari-ome-zarr reads it;
    # it reads only the scale of a dataset); each level adds (step - pixel) / 2.
    steps = [pixel * 2**k for k in range(len(levels))]
    shift = (pixel - 1) / 2
    multiscales = [
        multiscales_entry(
            str(metadata.get("layer", "heatmap")),
            [(step * per_px[0], step * per_px[1]) for step in steps],
            unit,
            channel=False,
            translations=[
                ((step - pixel) / 2 * per_px[0], (step - pixel) / 2 * per_px[1]) if k else None
                for k, step in enumerate(steps)
            ],
            translation=(shift * per_px[0], shift * per_px[1]),
        )
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        for k, level in enumerate(levels):
            chunks = (min(TILE * 2, level.shape[0]), min(TILE * 2, level.shape[1]))
            array = root.create_array(
                str(k), shape=level.shape, dtype="float32", chunks=chunks, fill_value=np.nan
            )
            array[...] = level
        root.attrs.update(
            {"multiscales": multiscales, "slidescope": {**metadata, "level0_pixel_size": pixel}}
        )
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
