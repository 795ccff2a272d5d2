"""Viewer speed on a 100,000 x 100,000 slide, against napari's own OME-Zarr reader.

The slide is a JPEG-tiled pyramidal BigTIFF whose tiles repeat 16 patterns (the file is a
few MB, written in a second); the same pixels are written as an OME-Zarr (NGFF 0.5, zarr
v3, ``(c, y, x)`` chunks, one real chunk file per pattern and hard links for the rest).

1. open -> first complete frame: SlideScope's window and its plugin reader against
   ``napari-ome-zarr`` on the OME-Zarr.
2. 200 camera moves at level 0 (pans, with a zoom step every 20th move): p50 / p95 time
   from the move to a settled frame, and the process memory after the path against
   before, for SlideScope (bounded tile cache) and for napari-ome-zarr (dask).

Run: QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest
tests/benchmarks/test_viewer.py -o addopts="" -m benchmark -s -p no:cacheprovider
"""

from __future__ import annotations

import os
import time
import weakref
from pathlib import Path

import imagecodecs
import numpy as np
import psutil
import pytest
import slidescope.app.ui  # noqa: F401 - guards PySide6's refcounts before any window opens
from slidescope.app.demo.tiff_writer import PyramidTiffWriter, TiffLevel
from slidescope.app.ui.main_window import SlideScopeWindow

pytestmark = pytest.mark.benchmark

SIZE = 100_000
TILE = 512
MPP = 0.25
PATTERNS = 16
MOVES = 200


def pattern_of(ty: int, tx: int) -> int:
    return (tx * 7 + ty * 3) % PATTERNS


def pattern_tiles() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    tiles = []
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    for k in range(PATTERNS):
        base = rng.integers(0, 256, size=(TILE // 8, TILE // 8, 3), dtype=np.uint8)
        tile = np.repeat(np.repeat(base, 8, axis=0), 8, axis=1)
        tile[..., 0] = (tile[..., 0] // 2 + (xx * 127 // TILE)).astype(np.uint8)
        tile[..., 2] = (tile[..., 2] // 2 + ((yy + 16 * k) % TILE * 127 // TILE)).astype(np.uint8)
        tiles.append(tile)
    return tiles


def level_sizes() -> list[int]:
    sizes = [SIZE]
    while sizes[-1] > 1024:
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def write_tiff(path: Path, tiles: list[np.ndarray]) -> Path:
    levels = [
        TiffLevel(s, s, TILE, MPP * SIZE / s, reduced=i > 0) for i, s in enumerate(level_sizes())
    ]
    with path.open("wb") as fh:
        writer = PyramidTiffWriter(fh, levels, description="SlideScope viewer benchmark")
        encoded = [bytes(imagecodecs.jpeg_encode(t, level=85, subsampling="420")) for t in tiles]
        for i, page in enumerate(levels):
            first: dict[int, tuple[int, int]] = {}
            for ty in range(page.tiles_down):
                for tx in range(page.tiles_across):
                    p = pattern_of(ty, tx)
                    index = ty * page.tiles_across + tx
                    if p not in first:
                        writer.write_tile(i, tx, ty, encoded[p])
                        first[p] = (page.offsets[index], page.byte_counts[index])
                    else:  # TIFF lets tiles share bytes: the file stays small
                        page.offsets[index], page.byte_counts[index] = first[p]
        writer.finish()
    return path


def write_ome_zarr(path: Path, tiles: list[np.ndarray]) -> Path:
    import zarr

    group = zarr.open_group(path, mode="w", zarr_format=3)
    datasets = []
    for i, s in enumerate(level_sizes()):
        array = group.create_array(
            str(i), shape=(3, s, s), chunks=(3, TILE, TILE), dtype="uint8", fill_value=255
        )
        n = -(-s // TILE)
        # the chunk (0, k) holds pattern 7k % 16; every other chunk links to its pattern's file
        for k in range(min(PATTERNS, n)):
            w = min(TILE, s - k * TILE)
            h = min(TILE, s)
            array[:, 0:h, k * TILE : k * TILE + w] = tiles[pattern_of(0, k)][:h, :w].transpose(
                2, 0, 1
            )
        root = path / str(i) / "c" / "0"
        for ty in range(n):
            for tx in range(n):
                if ty == 0 and tx < PATTERNS:
                    continue
                source_k = (7 * pattern_of(ty, tx)) % PATTERNS
                if ty == 0 or n <= PATTERNS:
                    h = min(TILE, s - ty * TILE)
                    w = min(TILE, s - tx * TILE)
                    tile = tiles[pattern_of(ty, tx)][:h, :w].transpose(2, 0, 1)
                    array[:, ty * TILE : ty * TILE + h, tx * TILE : tx * TILE + w] = tile
                    continue
                target = root / str(ty) / str(tx)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(root / "0" / str(source_k), target)
        scale = MPP * SIZE / s
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, scale, scale]}],
            }
        )
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": "benchmark",
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": datasets,
            }
        ],
    }
    return path


@pytest.fixture(scope="module")
def big_slide(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("viewer-bench")
    tiles = pattern_tiles()
    t0 = time.perf_counter()
    tiff = write_tiff(folder / "big.tiff", tiles)
    t1 = time.perf_counter()
    zarr_path = write_ome_zarr(folder / "big.ome.zarr", tiles)
    t2 = time.perf_counter()
    print(
        f"\n[viewer] wrote {SIZE:,} x {SIZE:,} TIFF ({tiff.stat().st_size / 1e6:.1f} MB) in "
        f"{t1 - t0:.1f} s and its OME-Zarr in {t2 - t1:.1f} s"
    )
    return tiff, zarr_path


def settled(viewer, qtbot) -> np.ndarray:
    """Wait for two identical screenshots in a row (every visible tile drawn)."""
    shots: list[np.ndarray] = []

    def same() -> bool:
        shots.append(viewer.screenshot(canvas_only=True, flash=False))
        return len(shots) > 1 and np.array_equal(shots[-2], shots[-1])

    qtbot.waitUntil(same, timeout=60_000)
    return shots[-1]


def test_open_to_first_frame(make_napari_viewer, big_slide, qtbot):
    tiff, zarr_path = big_slide
    timings: dict[str, float] = {}

    viewer = make_napari_viewer(show=True)
    window = SlideScopeWindow(viewer)
    ref = weakref.ref(window)
    t0 = time.perf_counter()
    window.open_slides([tiff])
    qtbot.waitUntil(lambda: ref().session.current is not None, timeout=60_000)
    settled(viewer, qtbot)
    timings["slidescope window"] = time.perf_counter() - t0
    assert viewer.layers[0].data[0].shape[:2] == (SIZE, SIZE)
    qtbot.waitUntil(lambda: not ref().session.busy, timeout=60_000)
    window.session.shutdown()
    del window

    for name, path, plugin in (
        ("slidescope plugin reader", tiff, "slidescope"),
        ("napari-ome-zarr", zarr_path, "napari-ome-zarr"),
    ):
        viewer = make_napari_viewer(show=True)
        t0 = time.perf_counter()
        layers = viewer.open(str(path), plugin=plugin)
        settled(viewer, qtbot)
        timings[name] = time.perf_counter() - t0
        assert layers
    base = timings["napari-ome-zarr"]
    print("\n[viewer] open -> first complete frame, 100,000 x 100,000:")
    for name, seconds in timings.items():
        print(f"  {name:26s} {seconds:6.2f} s   ratio to napari-ome-zarr {seconds / base:5.2f}")


def pan_path(viewer, qtbot, mpp: float) -> list[float]:
    """200 camera moves at level 0 from the slide's middle; seconds to a settled frame."""
    rng = np.random.default_rng(3)
    camera = viewer.scene.camera
    h, w = viewer.canvas.size
    centre = np.array([SIZE / 2, SIZE / 2], dtype=float)
    camera.zoom = 1.0 / mpp
    camera.center = tuple(centre * mpp)
    settled(viewer, qtbot)
    times = []
    for i in range(MOVES):
        t0 = time.perf_counter()
        if i % 20 == 19:  # a zoom step out and back in, as a reader does
            camera.zoom = 1.0 / mpp / (2.0 if (i // 20) % 2 == 0 else 1.0)
        else:
            step = rng.normal(0, 1, 2) * np.array([h, w]) / 3
            centre = np.clip(centre + step, 5000, SIZE - 5000)
            camera.center = tuple(centre * mpp)
        settled(viewer, qtbot)
        times.append(time.perf_counter() - t0)
    return times


def test_pan_and_zoom_path(make_napari_viewer, big_slide, qtbot):
    tiff, zarr_path = big_slide
    process = psutil.Process()
    results = {}

    viewer = make_napari_viewer(show=True)
    window = SlideScopeWindow(viewer, cache_bytes=256 * 1024**2)
    ref = weakref.ref(window)
    window.open_slides([tiff])
    qtbot.waitUntil(lambda: ref().session.current is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not ref().session.busy, timeout=60_000)
    settled(viewer, qtbot)
    before = process.memory_info().rss
    times = pan_path(viewer, qtbot, MPP)
    after = process.memory_info().rss
    results["slidescope"] = (times, after - before, window.session.cache.nbytes)
    window.session.shutdown()
    del window

    viewer = make_napari_viewer(show=True)
    viewer.open(str(zarr_path), plugin="napari-ome-zarr")
    settled(viewer, qtbot)
    before = process.memory_info().rss
    times = pan_path(viewer, qtbot, MPP)
    after = process.memory_info().rss
    results["napari-ome-zarr"] = (times, after - before, 0)

    base = np.percentile(results["napari-ome-zarr"][0], [50, 95])
    print(f"\n[viewer] {MOVES} camera moves at level 0 (move -> settled frame):")
    for name, (times, grown, cached) in results.items():
        p50, p95 = np.percentile(times, [50, 95])
        print(
            f"  {name:16s} p50 {p50 * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms  "
            f"(ratio p50 {p50 / base[0]:4.2f}, p95 {p95 / base[1]:4.2f})  "
            f"memory after - before {grown / 1e6:+7.1f} MB  tile cache {cached / 1e6:.0f} MB"
        )
