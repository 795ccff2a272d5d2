"""One bounded cache of decoded tiles, shared by the slide readers and the display.

Least recently used out first, bounded in bytes, thread-safe (napari slices from worker
threads while the UI reads; conversion reads from a pool). Keys are tuples whose first item
says whose tiles they are, so one cache can serve several slides and forget one of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

# The display's budget: a window's worth of levels of a few open slides.
DEFAULT_CACHE_BYTES = 256 * 1024**2


class TileCache:
    """Decoded tiles, least recently used out first, at most ``max_bytes`` in all.

    Parameters
    ----------
    max_bytes : int
        The budget; a tile larger than the whole budget is never kept.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._tiles: OrderedDict[tuple[Hashable, ...], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._tiles)

    def get(self, key: tuple[Hashable, ...]) -> np.ndarray | None:
        """The tile under ``key`` (now the most recently used), or None."""
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile

    def put(self, key: tuple[Hashable, ...], tile: np.ndarray) -> None:
        """Keep ``tile`` under ``key``, dropping the least recently used beyond the budget."""
        if tile.nbytes > self.max_bytes:
            return  # never hold a tile bigger than the whole budget
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._tiles[key] = tile
            self._bytes += tile.nbytes
            while self._bytes > self.max_bytes and self._tiles:
                _, evicted = self._tiles.popitem(last=False)
                self._bytes -= evicted.nbytes

    def forget(self, owner: Hashable) -> None:
        """Drop every tile whose key starts with ``owner`` (a closed slide's token)."""
        with self._lock:
            for key in [k for k in self._tiles if k[0] == owner]:
                self._bytes -= self._tiles.pop(key).nbytes

    def clear(self) -> None:
        """Drop every tile."""
        with self._lock:
            self._tiles.clear()
            self._bytes = 0
