"""A heatmap painted over the slide's thumbnail, with a colour bar, as one PNG.

The PNG's text chunks carry the slide identity, mpp and display choices as JSON
(key ``slidescope``), so a picture found in a report still says what it shows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo
from slidescope.app.analysis.heatmaps import HeatmapGrid, colorize, value_range
from slidescope.models.files import atomic_path

BAR_WIDTH = 24
BAR_MARGIN = 8
LABEL_WIDTH = 104


def _pixel_cells(
    grid: HeatmapGrid, slide_size: tuple[int, int], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Grid row of each image row and grid column of each image column (-1: off the grid).

    Image pixels are sampled at their centres in level-0 space.
    """
    width, height = size
    xs = (np.arange(width) + 0.5) * (slide_size[0] / width)
    ys = (np.arange(height) + 0.5) * (slide_size[1] / height)
    cols = np.floor((xs - grid.origin[0]) / grid.cell).astype(np.int64)
    rows = np.floor((ys - grid.origin[1]) / grid.cell).astype(np.int64)
    cols[(cols < 0) | (cols >= grid.values.shape[1])] = -1
    rows[(rows < 0) | (rows >= grid.values.shape[0])] = -1
    return rows, cols


def grid_to_image(
    grid: HeatmapGrid, slide_size: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """Sample a grid at the centres of the pixels of an image of the whole slide.

    Parameters
    ----------
    grid : HeatmapGrid
    slide_size : tuple of int
        Level-0 (width, height).
    size : tuple of int
        The image's (width, height), e.g. the thumbnail's.

    Returns
    -------
    ndarray
        (height, width) float32, NaN outside every patch.
    """
    width, height = size
    if grid.values.size == 0:
        return np.full((height, width), np.nan, dtype=np.float32)
    rows, cols = _pixel_cells(grid, slide_size, size)
    # an extra NaN row and column at index -1 stand for "off the grid"
    padded = np.pad(grid.values, ((0, 1), (0, 1)), constant_values=np.nan)
    return padded[np.ix_(rows, cols)]


def overlay_image(
    thumbnail: np.ndarray,
    grid: HeatmapGrid,
    slide_size: tuple[int, int],
    *,
    colormap: str = "turbo",
    opacity: float = 0.5,
    vrange: tuple[float, float] | None = None,
) -> np.ndarray:
    """The thumbnail (h, w, 3) with the grid blended over it, as (h, w, 3) uint8."""
    h, w = thumbnail.shape[:2]
    base = Image.fromarray(np.ascontiguousarray(thumbnail[..., :3])).convert("RGBA")
    if grid.values.size == 0:
        return np.asarray(base.convert("RGB"))
    low, high = vrange if vrange is not None else value_range(grid.values)
    # colour the cells (thousands), then gather whole RGBA pixels as uint32 (a million)
    padded = np.pad(grid.values, ((0, 1), (0, 1)), constant_values=np.nan)
    cells = colorize(padded, colormap, vmin=low, vmax=high, opacity=opacity)
    rows, cols = _pixel_cells(grid, slide_size, (w, h))
    packed = np.ascontiguousarray(cells).view(np.uint32)[..., 0]
    rgba = np.ascontiguousarray(packed[np.ix_(rows, cols)]).view(np.uint8).reshape(h, w, 4)
    return np.asarray(Image.alpha_composite(base, Image.fromarray(rgba, "RGBA")).convert("RGB"))


def colour_bar(height: int, colormap: str, vrange: tuple[float, float], title: str) -> np.ndarray:
    """A vertical colour bar (top = high) with its range and title, as (height, w, 3) uint8."""
    bar_height = max(height - 2 * BAR_MARGIN, 16)
    ramp = np.linspace(1.0, 0.0, bar_height, dtype=np.float32)[:, None].repeat(BAR_WIDTH, 1)
    rgba = colorize(ramp, colormap, vmin=0.0, vmax=1.0)
    panel = Image.new("RGB", (BAR_WIDTH + LABEL_WIDTH + 2 * BAR_MARGIN, height), "white")
    panel.paste(Image.fromarray(rgba[..., :3]), (BAR_MARGIN, BAR_MARGIN))
    draw = ImageDraw.Draw(panel)
    x_text = BAR_MARGIN * 2 + BAR_WIDTH
    draw.text((x_text, BAR_MARGIN), _format(vrange[1]), fill="black")
    draw.text((x_text, BAR_MARGIN + bar_height - 12), _format(vrange[0]), fill="black")
    draw.text((x_text, height // 2 - 6), title[:16], fill="black")
    return np.asarray(panel)


def write_png_overlay(
    path: str | Path,
    thumbnail: np.ndarray,
    grid: HeatmapGrid,
    slide_size: tuple[int, int],
    metadata: dict[str, Any],
    *,
    colormap: str = "turbo",
    opacity: float = 0.5,
    title: str = "",
    vrange: tuple[float, float] | None = None,
) -> Path:
    """Write the thumbnail with the heatmap over it and a colour bar on the right.

    Parameters
    ----------
    path : path
        The PNG to write (atomically).
    thumbnail : ndarray
        (h, w, 3) uint8 image of the whole slide.
    grid : HeatmapGrid
        The displayed (normalised, smoothed) scores.
    slide_size : tuple of int
        Level-0 (width, height) of the slide.
    metadata : dict
        Stored as JSON in the PNG's ``slidescope`` text chunk.
    """
    vrange = vrange if vrange is not None else value_range(grid.values)
    picture = overlay_image(
        thumbnail, grid, slide_size, colormap=colormap, opacity=opacity, vrange=vrange
    )
    bar = colour_bar(picture.shape[0], colormap, vrange, title)
    canvas = np.concatenate([picture, bar], axis=1)
    info = PngInfo()
    info.add_text("slidescope", json.dumps(metadata))
    info.add_text("Software", "SlideScope")
    path = Path(path)
    with atomic_path(path) as tmp:
        # compress_level 1: a thumbnail-sized PNG, where zlib's effort buys almost nothing
        Image.fromarray(canvas).save(tmp, format="PNG", pnginfo=info, compress_level=1)
    return path


def _format(value: float) -> str:
    if not math.isfinite(value):
        return "nan"
    return f"{value:.3g}"
