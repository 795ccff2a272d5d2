"""A bounded tile cache between napari and a slide's levels.

napari asks a multiscale layer for the visible region of one level at every camera move.
:class:`CachedLevel` answers from whole tiles kept in a :class:`TileCache` (least recently
used first out, bounded in bytes), so panning back over a place never decodes it twice,
only the tiles of the visible region are read, and the memory a slide holds is bounded.
One cache serves every open slide; closing a slide drops its tiles (:meth:`TileCache.forget`).
The cache itself is the slides' own :class:`~slidescope.app.slides.tile_cache.TileCache`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from slidescope.app.slides.tile_cache import DEFAULT_CACHE_BYTES, TileCache

DEFAULT_TILE = 512

# Tile decoding (JPEG, deflate) releases the GIL, so a few threads fill a view faster.
_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="slidescope-tiles")
_tokens = itertools.count()

__all__ = ["DEFAULT_CACHE_BYTES", "CachedLevel", "TileCache", "cached_levels"]


class CachedLevel:
    """An array-like view of one slide level that reads whole tiles through a cache.

    Parameters
    ----------
    array : array-like
        The level, ``(y, x, 3)`` uint8 (zarr, dask, numpy, ...), sliceable.
    cache : TileCache
        Where tiles are kept.
    owner : hashable
        The key prefix of this slide's tiles (see :meth:`TileCache.forget`).
    level : int
        The level's index, the second part of the key.
    tile : int, optional
        Tile edge in pixels; by default the array's own chunk edge when it has one
        (clipped to 256..2048), else 512.
    """

    def __init__(
        self,
        array: Any,
        cache: TileCache,
        owner: Hashable,
        level: int,
        tile: int | None = None,
    ) -> None:
        self._array = array
        self._cache = cache
        self._owner = owner
        self._level = level
        self.shape: tuple[int, int, int] = (int(array.shape[0]), int(array.shape[1]), 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self.tile = int(tile or _natural_tile(array))
        self.source: Any = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<CachedLevel {self._level} shape={self.shape} tile={self.tile}>"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.read(0, self.shape[0], 0, self.shape[1])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        rows, cols, channels = key[0], key[1], key[2:]
        y0, y1, ystep, ydrop = _bounds(rows, self.shape[0])
        x0, x1, xstep, xdrop = _bounds(cols, self.shape[1])
        region = self.read(y0, y1, x0, x1)
        # an integer index drops its axis, as numpy would
        ri = 0 if ydrop else slice(None, None, ystep)
        ci = 0 if xdrop else slice(None, None, xstep)
        index = (ri, ci, *channels)
        return region[index]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of the level as ``(h, w, 3)`` uint8."""
        t = self.tile
        out = np.empty((max(0, y1 - y0), max(0, x1 - x0), 3), dtype=np.uint8)
        if out.size == 0:
            return out
        wanted = [
            (ty, tx)
            for ty in range(y0 // t, (y1 - 1) // t + 1)
            for tx in range(x0 // t, (x1 - 1) // t + 1)
        ]
        tiles: dict[tuple[int, int], np.ndarray] = {}
        missing = []
        for ty, tx in wanted:
            tile = self._cache.get((self._owner, self._level, ty, tx))
            if tile is None:
                missing.append((ty, tx))
            else:
                tiles[(ty, tx)] = tile
        if len(missing) == 1:
            tiles[missing[0]] = self._load(*missing[0])
        elif missing:
            for where, tile in zip(missing, _READERS.map(lambda m: self._load(*m), missing)):
                tiles[where] = tile
        for (ty, tx), tile in tiles.items():
            ty0, tx0 = ty * t, tx * t
            sy0, sy1 = max(y0, ty0), min(y1, ty0 + tile.shape[0])
            sx0, sx1 = max(x0, tx0), min(x1, tx0 + tile.shape[1])
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = tile[
                sy0 - ty0 : sy1 - ty0, sx0 - tx0 : sx1 - tx0
            ]
        return out

    def _load(self, ty: int, tx: int) -> np.ndarray:
        t = self.tile
        ys, xs = (
            slice(ty * t, min((ty + 1) * t, self.shape[0])),
            slice(tx * t, min((tx + 1) * t, self.shape[1])),
        )
        tile = np.ascontiguousarray(np.asarray(self._array[ys, xs])[..., :3], dtype=np.uint8)
        self._cache.put((self._owner, self._level, ty, tx), tile)
        return tile


def cached_levels(
    levels: Sequence[Any], cache: TileCache, source: Any = None
) -> tuple[list[CachedLevel], Hashable]:
    """Wrap every level of a slide; returns the wrappers and the token to forget.

    ``source`` (the slide) is kept alive by the wrappers: a layer made by a reader holds
    the only reference to its slide.
    """
    token = ("slide", next(_tokens))
    wrapped = [CachedLevel(a, cache, token, i) for i, a in enumerate(levels)]
    for level in wrapped:
        level.source = source
    return wrapped, token


def _natural_tile(array: Any) -> int:
    chunks: Any = getattr(array, "chunks", None)
    try:
        edge = int(chunks[0]) if not isinstance(chunks[0], tuple) else int(chunks[0][0])
    except (TypeError, IndexError, ValueError):
        return DEFAULT_TILE
    # tiny TIFF tiles make too many reads; huge strips hold too much per key
    return int(min(max(edge, 256), 2048))


def _bounds(index: Any, length: int) -> tuple[int, int, int, bool]:
    """``(start, stop, step, dropped)`` of one index into an axis of ``length``."""
    if isinstance(index, slice):
        start, stop, step = index.indices(length)
        if step < 0:
            raise IndexError("CachedLevel does not read backwards")
        return start, max(start, stop), step, False
    i = int(index)
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"index {index} out of range for an axis of {length}")
    return i, i + 1, 1, True
