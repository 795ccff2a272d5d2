"""The tile cache: reads what is asked through whole tiles, bounded in bytes, forgets a slide."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.app.display.tile_cache import CachedLevel, TileCache, cached_levels


class CountingArray:
    """A level that counts the reads that reach it."""

    def __init__(self, data: np.ndarray, chunks: tuple[int, ...] | None = None) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        if chunks is not None:
            self.chunks = chunks
        self.reads: list[tuple[slice, slice]] = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(1000, 1300, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "key",
    [
        (slice(0, 10), slice(0, 10)),
        (slice(250, 777), slice(3, 1299)),
        (slice(None), slice(None)),
        (slice(900, 2000), slice(1200, 5000)),  # past the end, as napari may ask
        (5, slice(10, 600)),
        (slice(10, 600), 7),
        (slice(0, 1000, 3), slice(0, 1300, 7)),
        (slice(100, 200), slice(100, 200), 1),
        (slice(100, 200), slice(100, 200), slice(0, 2)),
        (999, 1299),
    ],
)
def test_reads_equal_numpy(data, key):
    level = CachedLevel(CountingArray(data), TileCache(), owner="s", level=0, tile=256)
    np.testing.assert_array_equal(level[key], data[key])


def test_array_like_for_napari(data):
    level = CachedLevel(CountingArray(data, chunks=(240, 240, 3)), TileCache(), "s", 0)
    assert level.shape == (1000, 1300, 3)
    assert level.dtype == np.uint8
    assert level.ndim == 3
    assert level.tile == 256  # 240-px TIFF tiles are grouped into 256..2048
    np.testing.assert_array_equal(np.asarray(level), data)


def test_second_read_comes_from_the_cache(data):
    source = CountingArray(data)
    level = CachedLevel(source, TileCache(), "s", 0, tile=256)
    level[100:400, 100:400]
    first = len(source.reads)
    assert first == 4  # a 300 x 300 view over 2 x 2 tiles
    level[120:380, 150:390]
    assert len(source.reads) == first


def test_cache_is_bounded_and_least_recently_used_goes_first():
    cache = TileCache(max_bytes=3 * 100)
    tiles = {k: np.full((10, 10, 1), k, dtype=np.uint8) for k in range(4)}
    for k in range(3):
        cache.put(("s", 0, k, 0), tiles[k])
    cache.get(("s", 0, 0, 0))  # 0 is now the most recent
    cache.put(("s", 0, 3, 0), tiles[3])
    assert cache.nbytes == 300
    assert cache.get(("s", 0, 1, 0)) is None  # the least recently used left
    assert cache.get(("s", 0, 0, 0)) is not None
    cache.put(("s", 0, 9, 9), np.zeros((100, 100), dtype=np.uint8))  # bigger than the budget
    assert cache.get(("s", 0, 9, 9)) is None
    assert cache.nbytes <= cache.max_bytes


def test_forget_drops_one_slide_only(data):
    cache = TileCache()
    a, token_a = cached_levels([CountingArray(data)], cache)
    b, token_b = cached_levels([CountingArray(data)], cache)
    assert token_a != token_b
    a[0][:600, :600]
    b[0][:600, :600]
    both = cache.nbytes
    cache.forget(token_a)
    assert 0 < cache.nbytes < both
    assert all(key[0] == token_b for key in cache._tiles)


def test_panning_a_big_level_stays_within_budget():
    big = np.zeros((8192, 8192, 3), dtype=np.uint8)
    cache = TileCache(max_bytes=8 * 512 * 512 * 3)
    level = CachedLevel(big, cache, "s", 0, tile=512)
    for i in range(0, 7000, 300):
        level[i : i + 900, i : i + 1200]
        assert cache.nbytes <= cache.max_bytes
