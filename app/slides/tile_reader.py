"""Regions of a tiled TIFF page, decoded straight from the file's own tiles.

zarr v3 spends tens of microseconds of Python per chunk, which makes a 512 x 512 read of a
240-px-tiled slide (9-16 tiles) slower than OpenSlide. :class:`TileReader` is the fast path
behind ``TiffSlide.read_region``: it reads each needed tile with ``os.pread`` (thread-safe, no
shared file position), decodes it with tifffile's own per-page decoder (imagecodecs, which
releases the GIL, so two threads decode in parallel) and keeps recent tiles in a small
bounded :class:`TileCache`. It also knows which tiles are damaged (zero length, past the end
of the file) so that reading one raises :class:`CorruptSlideError` instead of returning the
zeros tifffile's zarr store would silently give.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
from slidescope.app.slides.chunk_codec import JpegTiles
from slidescope.app.slides.decode_buffer import cached_empty, thread_buffer
from slidescope.app.slides.errors import CorruptSlideError
from slidescope.app.slides.file_errors import FILE_ERRORS
from slidescope.app.slides.tile_cache import TileCache
from tifffile.tifffile import jpeg_decode_colorspace

# Edge tiles only (see TileReader.read): a few dozen tiles of a few levels.
DEFAULT_CACHE_BYTES = 16 * 1024 * 1024
# What decoding a damaged tile raises (a tuple mypy can read in an ``except``)
_DECODE_ERRORS: tuple[type[BaseException], ...] = (*FILE_ERRORS, MemoryError)


class SlideFile:
    """A read-only file handle that many threads can read at once (``pread``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # only used where os.pread is missing (Windows)
        # A slide that is dropped without close() must not leak its descriptor.
        self._finalizer = weakref.finalize(self, os.close, self._fd)

    def read(self, offset: int, count: int) -> bytes:
        if self._fd is None:
            raise ValueError(f"{self.path}: the slide is closed")
        if hasattr(os, "pread"):
            return os.pread(self._fd, count, offset)
        with self._lock:  # pragma: no cover - Windows
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, count)

    def close(self) -> None:
        self._fd = None
        self._finalizer()  # closes the descriptor once


def damaged_tiles(page: Any, file_size: int) -> dict[int, str]:
    """Tiles of ``page`` that cannot hold pixels: zero length, or past the end of the file."""
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    damaged: dict[int, str] = {}
    for index in np.flatnonzero(counts == 0):
        damaged[int(index)] = "has zero length (TileByteCounts is 0)"
    for index in np.flatnonzero((counts > 0) & (offsets + counts > file_size)):
        damaged[int(index)] = "lies past the end of the file (the file is truncated)"
    for index in np.flatnonzero((counts > 0) & (offsets < 8)):
        damaged[int(index)] = "points into the file's header (its TileOffsets entry is damaged)"
    return damaged


class TileReader:
    """Reads windows of one tiled, chunky TIFF page as ``(h, w, 3)`` uint8.

    Parameters
    ----------
    file : SlideFile
        The open slide file.
    page : tifffile.TiffPage
        A tiled page with contiguous samples (1, 3 or 4 of them), uint8.
    level : int
        The pyramid level this page is (for messages and cache keys).
    cache : TileCache
        Shared by every level of the slide.
    """

    def __init__(self, file: SlideFile, page: Any, level: int, cache: TileCache) -> None:
        self.file = file
        self.level = level
        self.cache = cache
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        self.tile_height, self.tile_width = int(page.tilelength), int(page.tilewidth)
        self.samples = int(page.samplesperpixel)
        self.tiles_across = -(-self.width // self.tile_width)
        self.tiles_down = -(-self.height // self.tile_height)
        self.offsets = [int(o) for o in page.dataoffsets]
        self.counts = [int(c) for c in page.databytecounts]
        self.damaged = damaged_tiles(page, file.size)
        self._decode = page.decode
        self._jpegtables = page.jpegtables
        self._jpegheader = getattr(page, "jpegheader", None)
        self._tile_shape = (self.tile_height, self.tile_width, 3)
        self._local = threading.local()
        # 8-bit RGB JPEG tiles (nearly every slide): imagecodecs decodes them straight
        # into a buffer, without tifffile's per-tile Python around it
        self._jpeg: tuple[Any, Any] | None = None
        if (
            int(page.compression) == 7
            and self.samples == 3
            and int(page.bitspersample) == 8
            and self._jpegheader is None
        ):
            self._jpeg = jpeg_decode_colorspace(
                page.photometric, page.planarconfig, page.extrasamples, page.is_jfif
            )

    def jpeg_tiles(self) -> JpegTiles | None:
        """How this level's tiles decode, when they are square 8-bit RGB JPEG (else None).

        A converter that stores them unchanged (:meth:`stored_tile`) records this beside them.
        """
        if self._jpeg is None or self.tile_width != self.tile_height:
            return None
        colorspace, outcolorspace = self._jpeg
        return JpegTiles(self.tile_width, self._jpegtables, colorspace, outcolorspace)

    def stored_tile(self, row: int, col: int) -> bytes | None:
        """The compressed bytes of tile (row, column) as the file stores them.

        None where they cannot stand for the tile: it is damaged, empty (a sparse file), or
        not one whole JPEG stream (start and end markers). The caller decodes it then,
        which names the damage.
        """
        index = row * self.tiles_across + col
        if index in self.damaged or self.counts[index] < 4:
            return None
        data = self.file.read(self.offsets[index], self.counts[index])
        if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
            return None
        return data

    @staticmethod
    def can_read(page: Any) -> bool:
        """Whether ``page`` has the simple layout this reader decodes."""
        return bool(
            page.is_tiled
            and not getattr(page, "is_ndpi", False)
            and page.planarconfig == 1
            and int(getattr(page, "imagedepth", 1)) == 1
            and int(getattr(page, "tiledepth", 1)) == 1
            and np.dtype(page.dtype) == np.uint8
            and int(page.samplesperpixel) in (1, 3, 4)
        )

    def tiles_in(self, y0: int, y1: int, x0: int, x1: int) -> list[tuple[int, int]]:
        """(row, column) of every tile that the window ``[y0:y1, x0:x1]`` touches."""
        if y1 <= y0 or x1 <= x0:
            return []
        rows = range(y0 // self.tile_height, (y1 - 1) // self.tile_height + 1)
        cols = range(x0 // self.tile_width, (x1 - 1) // self.tile_width + 1)
        return [(r, c) for r in rows for c in cols]

    def check(self, y0: int, y1: int, x0: int, x1: int) -> None:
        """Raise :class:`CorruptSlideError` if the window touches a damaged tile."""
        if not self.damaged:
            return
        for row, col in self.tiles_in(y0, y1, x0, x1):
            index = row * self.tiles_across + col
            if index in self.damaged:
                self._raise_damaged(index, row, col)

    def _raise_damaged(self, index: int, row: int, col: int) -> None:
        raise CorruptSlideError(
            self.file.path,
            f"tile {index} (row {row}, column {col}) of level {self.level} "
            f"{self.damaged[index]}; the file is damaged, get a fresh copy of the slide",
        )

    def tile(self, row: int, col: int) -> np.ndarray:
        """The decoded tile at (row, column), ``(tile_height, tile_width, 3)`` uint8, cached."""
        index = row * self.tiles_across + col
        key = (self.level, index)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        tile = self._decode_tile(index, row, col, None)
        self.cache.put(key, tile)
        return tile

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The window ``[y0:y1, x0:x1]`` (inside the level) as ``(h, w, 3)`` uint8.

        A tile wholly inside the window is decoded into this thread's reused tile buffer
        and copied once into the output, and not cached: it would not be asked for again.
        A tile the window only partly covers is kept in the cache where this thread's
        reads walk (the window touches or adjoins the tiles of its last read: panning,
        patches in raster order), for the next read finds it there. Where they jump
        (random patches), it too is decoded into the buffer and not kept: caching it would
        allocate fresh memory for every tile and push out what the display may ask for
        again.
        """
        th, tw = self.tile_height, self.tile_width
        tiles = (y0 // th, (y1 - 1) // th, x0 // tw, (x1 - 1) // tw)
        last = getattr(self._local, "last", None)
        self._local.last = tiles
        walking = last is None or (
            tiles[0] <= last[1] + 1
            and last[0] <= tiles[1] + 1
            and tiles[2] <= last[3] + 1
            and last[2] <= tiles[3] + 1
        )

        def whole(row: int, col: int) -> np.ndarray:
            index = row * self.tiles_across + col
            return self._decode_tile(index, row, col, self._buffer())

        def kept_or_whole(row: int, col: int) -> np.ndarray:
            cached = self.cache.get((self.level, row * self.tiles_across + col))
            return cached if cached is not None else whole(row, col)

        if self.cache.max_bytes <= 0:  # a reader without a cache decodes every tile so
            partial = whole
        else:
            partial = self.tile if walking else kept_or_whole
        return assemble(y0, y1, x0, x1, (th, tw), partial, whole)

    def _buffer(self) -> np.ndarray | None:
        """This thread's tile buffer (JPEG RGB tiles only; other codecs allocate)."""
        if self._jpeg is None:
            return None
        return thread_buffer(self._local, (self.tile_height, self.tile_width, 3))

    def _decode_tile(self, index: int, row: int, col: int, out: np.ndarray | None) -> np.ndarray:
        """Decode tile ``index`` as ``(tile_height, tile_width, 3)``, into ``out`` if given."""
        if index in self.damaged:
            self._raise_damaged(index, row, col)
        data = self.file.read(self.offsets[index], self.counts[index])
        if self._jpeg is not None:
            try:
                colorspace, outcolorspace = self._jpeg
                return np.asarray(
                    imagecodecs.jpeg8_decode(
                        data,
                        tables=self._jpegtables,
                        colorspace=colorspace,
                        outcolorspace=outcolorspace,
                        shape=(self.tile_height, self.tile_width),
                        out=out if out is not None else cached_empty(self._tile_shape),
                    )
                )
            except _DECODE_ERRORS:
                pass  # not plain 8-bit JPEG after all: tifffile's decoder says why, below
        try:
            decoded, _, _ = self._decode(
                data,
                index,
                jpegtables=self._jpegtables,
                jpegheader=self._jpegheader,
                _fullsize=True,
            )
            tile = np.asarray(decoded).reshape(self.tile_height, self.tile_width, self.samples)
        except _DECODE_ERRORS as error:
            raise CorruptSlideError(
                self.file.path,
                f"tile {index} (row {row}, column {col}) of level {self.level} cannot be "
                f"decoded ({type(error).__name__}: {error}); the file is damaged",
            ) from error
        if self.samples == 1:
            return np.repeat(tile, 3, axis=2)
        if self.samples == 4:
            return np.ascontiguousarray(tile[..., :3])
        return tile


class ChunkReader:
    """Windows of a chunked ``(y, x, 3)`` level, read whole chunk by chunk through a cache.

    For OME-Zarr: neighbouring reads (panning, patches in raster order) share chunks, and
    a chunk is decoded once instead of once per read that touches it.

    Parameters
    ----------
    view : array-like
        The level as ``(y, x, 3)`` uint8 (an :class:`~slidescope.app.slides.rgb_view.RGBView`).
    chunk : (int, int)
        The stored chunk's height and width.
    key : hashable
        What tells this level's chunks apart from other levels' in ``cache``.
    cache : TileCache
        Shared by every level of the slide.
    """

    def __init__(self, view: Any, chunk: tuple[int, int], key: Hashable, cache: TileCache) -> None:
        self.view = view
        self.chunk = (max(1, int(chunk[0])), max(1, int(chunk[1])))
        self.key = key
        self.cache = cache
        self.height, self.width = int(view.shape[0]), int(view.shape[1])

    def tile(self, row: int, col: int) -> np.ndarray:
        """The chunk at (row, column), cut to the level's edge."""
        key = (self.key, row, col)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        ch, cw = self.chunk
        block = np.asarray(self.view[row * ch : (row + 1) * ch, col * cw : (col + 1) * cw])
        self.cache.put(key, block)
        return block

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The window ``[y0:y1, x0:x1]`` (inside the level) as ``(h, w, 3)`` uint8."""
        return assemble(y0, y1, x0, x1, self.chunk, self.tile)


def assemble(
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    tile_shape: tuple[int, int],
    tile: Callable[[int, int], np.ndarray],
    whole: Callable[[int, int], np.ndarray] | None = None,
) -> np.ndarray:
    """Copy the window ``[y0:y1, x0:x1]`` together from the tiles ``tile(row, col)`` holds.

    ``whole(row, col)``, if given, gets the tiles the window covers wholly instead (decoded
    into a reused buffer, uncached: copied once here, they are not asked for again).
    """
    out = np.empty((max(y1 - y0, 0), max(x1 - x0, 0), 3), dtype=np.uint8)
    if out.size == 0:
        return out
    th, tw = tile_shape
    for row in range(y0 // th, (y1 - 1) // th + 1):
        ty0 = row * th
        sy0, sy1 = max(y0, ty0), min(y1, ty0 + th)
        for col in range(x0 // tw, (x1 - 1) // tw + 1):
            tx0 = col * tw
            sx0, sx1 = max(x0, tx0), min(x1, tx0 + tw)
            inside = sy1 - sy0 == th and sx1 - sx0 == tw
            block = whole(row, col) if whole is not None and inside else tile(row, col)
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = block[
                sy0 - ty0 : sy1 - ty0, sx0 - tx0 : sx1 - tx0
            ]
    return out
