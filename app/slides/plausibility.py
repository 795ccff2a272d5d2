"""Sizes a slide file claims, checked before anything is allocated for them.

A damaged or hostile file can claim any size: a 2.6 KB file saying it is 10⁶ × 10⁶ px, a
tile of 65,535 × 65,535 px, a tile table four entries long for a level of thousands of
tiles. Decoders trust these numbers and allocate what they say (OpenSlide aborted the
process asking for 176 GB). Every backend checks them here first, against limits that real
slides never reach:

- a level side of at most 2^20 px (1,048,576): at 0.25 µm/px that is 26 cm, more than three
  times the long side of a 75 × 25 mm glass slide; the largest whole-slide scans are about
  200,000 px across;
- a tile (or chunk, or strip) side of at most 2^14 px and at most 256 MiB decoded: scanners
  write 240–1,024 px tiles, converters up to 4,096;
- at most 8 samples per pixel (RGB, alpha, CMYK and a few extra) of at most 64 bits;
- a tile table with exactly one entry per tile the level's size implies, every entry inside
  the file (checked per tile where the reader can refuse single tiles).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slidescope.app.slides.errors import CorruptSlideError, SlideTooLargeError

MAX_SIDE = 2**20
MAX_TILE_SIDE = 2**14
MAX_TILE_BYTES = 256 * 2**20
MAX_SAMPLES = 8
MAX_LEVELS = 64
# More IFDs than this are not looked at one by one (an OME-TIFF with thousands of planes).
MAX_PAGES_CHECKED = 1024


def check_image_size(path: Path, width: int, height: int, what: str) -> None:
    """Refuse a claimed image size no slide has."""
    if width < 1 or height < 1:
        raise CorruptSlideError(path, f"{what} claims an empty size of {width} x {height} px")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise SlideTooLargeError(
            path,
            f"{what} claims {width:,} x {height:,} px; no slide is larger than "
            f"{MAX_SIDE:,} px a side, so the file is damaged",
        )


def check_tile_size(path: Path, shape: Iterable[int], itemsize: int, what: str) -> None:
    """Refuse a tile, chunk or strip too large to be decoded in one piece."""
    sides = [int(s) for s in shape]
    if any(s < 1 for s in sides):
        raise CorruptSlideError(path, f"{what} has tiles of size {sides}, which is impossible")
    nbytes = math.prod(sides) * itemsize
    if max(sides[:2], default=0) > MAX_TILE_SIDE or nbytes > MAX_TILE_BYTES:
        raise SlideTooLargeError(
            path,
            f"{what} claims tiles of {sides} ({nbytes / 2**20:,.0f} MiB decoded); no "
            "slide's tiles are that large, so the file is damaged",
        )


def check_tiff_page(path: Path, page: Any, what: str) -> None:
    """Check one TIFF page's claimed sizes and tile table before any pixel is read."""
    width, height = int(page.imagewidth), int(page.imagelength)
    check_image_size(path, width, height, what)
    samples = int(page.samplesperpixel)
    bits = int(page.bitspersample)
    if not 1 <= samples <= MAX_SAMPLES or not 1 <= bits <= 64:
        raise CorruptSlideError(
            path, f"{what} claims {samples} samples of {bits} bits per pixel; the file is damaged"
        )
    itemsize = max(1, bits // 8)
    if page.is_tiled:
        tile = (int(page.tilelength), int(page.tilewidth), samples)
        check_tile_size(path, tile, itemsize, what)
    elif not getattr(page, "is_ndpi", False):  # NDPI levels are one JPEG read by MCU rows
        rows = int(page.rowsperstrip) if page.rowsperstrip else height
        check_tile_size(path, (min(rows, height), width, samples), itemsize, f"{what}'s strips")
    expected = _chunk_count(page)
    found = len(page.dataoffsets)
    if expected is not None and found != expected:
        raise CorruptSlideError(
            path,
            f"{what} is {width} x {height} px, which needs {expected:,} tiles, but its tile "
            f"table lists {found:,}; the file is damaged",
        )


def _chunk_count(page: Any) -> int | None:
    """How many tiles (or strips) a page's size implies, or None where tifffile decides."""
    if getattr(page, "is_ndpi", False):
        return None
    height, width = int(page.imagelength), int(page.imagewidth)
    planes = int(page.samplesperpixel) if int(page.planarconfig) == 2 else 1
    depth = int(getattr(page, "imagedepth", 1) or 1)
    if page.is_tiled:
        tdepth = int(getattr(page, "tiledepth", 1) or 1)
        return (
            -(-height // int(page.tilelength))
            * -(-width // int(page.tilewidth))
            * -(-depth // tdepth)
            * planes
        )
    if not page.rowsperstrip:
        return None
    return -(-height // int(page.rowsperstrip)) * depth * planes


def check_tiff_file(path: Path, tif: Any) -> None:
    """Check every page of an open :class:`tifffile.TiffFile` (what OpenSlide would read)."""
    pages = tif.pages
    count = min(len(pages), MAX_PAGES_CHECKED)
    for index in range(count):
        page = pages[index]
        if not hasattr(page, "imagewidth"):  # a TiffFrame: its key frame is checked
            continue
        check_tiff_page(path, page, f"image {index} of the TIFF")
