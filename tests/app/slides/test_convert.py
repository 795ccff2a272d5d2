"""OME-Zarr conversion: lossless round trip, NGFF metadata, resumable, readable by others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from slidescope.app.cli import main
from slidescope.app.jobs import run_job
from slidescope.app.slides import CorruptSlideError, IncompleteConversionError, open_slide
from slidescope.app.slides.convert import JOURNAL, ConversionError, convert_to_omezarr

MPP = 0.5
CHUNK = 256


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack(
        [(xx * 0.3) % 256, (yy * 0.2) % 256, ((xx + yy) * 0.1) % 256], axis=-1
    ) + rng.integers(0, 8, (height, width, 3))
    return image.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiled TIFF with level 0 and a 2× level, but no 4× level: that one is computed."""
    path = tmp_path_factory.mktemp("src") / "source slide.tiff"
    level0 = smooth_image(1100, 1500, 0)
    level1 = smooth_image(550, 750, 1)  # deliberately not level 0 halved: copied, not computed
    # bare glass: uniform chunks, whose encoded bytes the converter reuses
    level0[:768, :512] = (244, 243, 246)
    level1[:256, :256] = (244, 243, 246)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for index, image in enumerate((level0, level1)):
            tif.write(
                image,
                tile=(256, 256),
                compression="zlib",
                photometric="rgb",
                resolution=(1e4 / (MPP * 2**index),) * 2,
                resolutionunit="CENTIMETER",
                subfiletype=1 if index else 0,
            )
    return path


@pytest.fixture(scope="module")
def converted(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "converted.zarr"
    run_job(convert_to_omezarr(source, out, chunk=CHUNK))
    return out


def box_mean(image: np.ndarray, step: int = 2) -> np.ndarray:
    """The ``step``×``step`` mean, rounded half up (a ragged last row or column dropped)."""
    h, w = image.shape[0] // step, image.shape[1] // step
    b = image[: h * step, : w * step].astype(np.uint32).reshape(h, step, w, step, 3)
    return ((b.sum(axis=(1, 3)) + step * step // 2) // (step * step)).astype(np.uint8)


def halve(image: np.ndarray) -> np.ndarray:
    return box_mean(image, 2)


def test_every_level_round_trips_losslessly(source: Path, converted: Path) -> None:
    """The source's levels are copied; below them, 4× levels (4×4 means) to one chunk."""
    with open_slide(source) as src, open_slide(converted) as out:
        assert out.format == "ome-zarr"
        assert out.level_dimensions == [(1500, 1100), (750, 550), (187, 137)]
        assert out.mpp == pytest.approx((MPP, MPP))
        level0 = np.asarray(src.levels[0][:, :])
        level1 = np.asarray(src.levels[1][:, :])
        assert np.array_equal(np.asarray(out.levels[0][:, :]), level0)
        # the source's own 2× level is reused, not recomputed
        assert np.array_equal(np.asarray(out.levels[1][:, :]), level1)
        assert np.array_equal(np.asarray(out.levels[2][:, :]), box_mean(level1, 4))
        assert out.identity == src.identity


def test_level_step_2_computes_every_2x_level(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "every-2x.zarr"
    run_job(convert_to_omezarr(source, out, chunk=CHUNK, level_step=2))
    with open_slide(source) as src, open_slide(out) as done:
        assert done.level_dimensions == [(1500, 1100), (750, 550), (375, 275), (187, 137)]
        level1 = np.asarray(src.levels[1][:, :])
        assert np.array_equal(np.asarray(done.levels[1][:, :]), level1)
        level2 = np.asarray(done.levels[2][:, :])
        assert np.array_equal(level2, halve(level1))
        assert np.array_equal(np.asarray(done.levels[3][:, :]), halve(level2))
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["slidescope"]["level_step"] == 2
    assert "2x2 mean" in attrs["multiscales"][0]["metadata"]["description"]


@pytest.mark.parametrize("step", [4, 2])
def test_levels_of_a_slide_without_pyramid_are_computed(tmp_path: Path, step: int) -> None:
    """Glass shrinks to glass without decoding (by its bytes); tissue is averaged."""
    path = tmp_path / "flat.tiff"
    image = smooth_image(1100, 1500, 4)
    image[:1024, :1024] = (241, 240, 245)
    tifffile.imwrite(path, image, tile=(256, 256), photometric="rgb")
    out = tmp_path / "flat.zarr"
    run_job(convert_to_omezarr(path, out, chunk=CHUNK, level_step=step))
    with open_slide(out) as done:
        assert len(done.levels) == {4: 3, 2: 4}[step]  # down to one 256 px chunk
        expected = image
        for level in done.levels:
            assert np.array_equal(np.asarray(level[:, :]), expected)
            expected = box_mean(expected, step)


def test_metadata_is_ngff_04_with_rgb_channels(converted: Path) -> None:
    attrs = json.loads((converted / ".zattrs").read_text())
    (multiscale,) = attrs["multiscales"]
    assert multiscale["version"] == "0.4"
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["axes"][0]["type"] == "channel"
    assert {a.get("unit") for a in multiscale["axes"][1:]} == {"micrometer"}
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    assert scales[0] == pytest.approx([1.0, MPP, MPP])
    assert scales[1] == pytest.approx([1.0, 2 * MPP, 2 * MPP])
    assert scales[2] == pytest.approx([1.0, 8 * MPP, 8 * MPP], rel=0.01)
    assert [d["path"] for d in multiscale["datasets"]] == ["0", "1", "2"]
    assert multiscale["metadata"]["description"].startswith("4x4 mean")
    assert [c["color"] for c in attrs["omero"]["channels"]] == ["FF0000", "00FF00", "0000FF"]
    ours = attrs["slidescope"]
    assert ours["complete"] is True
    assert ours["mpp"] == [MPP, MPP]
    assert ours["source"]["slide_id"] == "source slide"
    array = json.loads((converted / "0" / ".zarray").read_text())
    assert array["dtype"] == "|u1"
    assert array["chunks"] == [3, CHUNK, CHUNK]
    assert array["compressor"]["id"] == "blosc"
    assert array["dimension_separator"] == "/"


def test_ome_zarr_py_reads_the_pyramid(converted: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(converted)))())
    image = nodes[0]
    assert len(image.data) == 3
    assert tuple(image.data[0].shape) == (3, 1100, 1500)
    with open_slide(converted) as slide:
        expected = np.asarray(slide.levels[2][:, :]).transpose(2, 0, 1)
    assert np.array_equal(np.asarray(image.data[2]), expected)


def test_napari_ome_zarr_reads_it_as_rgb_channels(converted: Path) -> None:
    reader_module = pytest.importorskip("napari_ome_zarr._reader")
    reader = reader_module.napari_get_reader(str(converted))
    assert reader is not None
    layers = reader(str(converted))
    data, meta, kind = layers[0]
    assert kind == "image"
    assert len(data) == 3
    assert tuple(data[0].shape) == (3, 1100, 1500)
    assert meta["channel_axis"] == 0
    assert meta["scale"] == pytest.approx([MPP, MPP])


def chunk_files(out: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def journalled(out: Path, source: Path) -> list[Path]:
    """The chunk files of the rows the journal holds (their blocks' levels included)."""
    from slidescope.app.slides.convert import LEVEL_STEP, _plan
    from slidescope.app.slides.pyramid_chunks import plan_stages

    rows = {tuple(map(int, line.split())) for line in (out / JOURNAL).read_text().splitlines()}
    with open_slide(source) as src:
        levels = _plan(src, CHUNK)
    files = []
    for stage in plan_stages(levels, CHUNK, LEVEL_STEP):
        for step in range(stage.depth + 1):
            per_block = LEVEL_STEP ** (stage.depth - step)
            folder = out / str(stage.top + step) / "0"
            for level, row in rows:
                if level != stage.top:
                    continue
                for chunk_row in range(row * per_block, (row + 1) * per_block):
                    if (folder / str(chunk_row)).is_dir():
                        files += sorted((folder / str(chunk_row)).iterdir())
    return files


def test_a_cancelled_conversion_is_refused_then_resumed(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed.zarr"
    job = convert_to_omezarr(source, out, chunk=CHUNK, threads=1)
    for _ in range(2):  # of 5 tasks (a row of level 0's chunks each), then one of levels 1-3
        next(job)
    job.close()
    with pytest.raises(IncompleteConversionError, match="convert"):
        open_slide(out)
    kept = journalled(out, source)
    assert 12 <= len(kept) < 30  # whole rows of level 0's chunks
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    run_job(convert_to_omezarr(source, out, chunk=CHUNK))
    # the rows the journal held were left as they were; the pyramid is the uninterrupted one
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps
    assert chunk_files(out) == chunk_files(converted)
    assert not (out / JOURNAL).exists()


KILLED_CONVERSION = """
import sys, time
from slidescope.app.jobs import run_job
from slidescope.app.slides import pyramid_chunks
from slidescope.app.slides.convert import convert_to_omezarr

write_block = pyramid_chunks.ChunkWriter.write_block


def slowly(self, *args):  # time for the test to kill it half way
    time.sleep(0.05)
    return write_block(self, *args)


pyramid_chunks.ChunkWriter.write_block = slowly
run_job(convert_to_omezarr(sys.argv[1], sys.argv[2], chunk=int(sys.argv[3]), threads=1))
"""


def test_a_killed_conversion_resumes_to_the_same_pyramid(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    """SIGKILL half way, a chunk of an unfinished row cut short as a kill mid-write leaves
    it: the second run replaces it, and the pyramid is the uninterrupted one, byte for byte."""
    import subprocess
    import sys
    import time

    out = tmp_path / "killed.zarr"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CONVERSION, str(source), str(out), str(CHUNK)]
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if (out / "0/0/2/1").exists():  # rows 0 and 1 done, row 2 (6 chunks) begun
                break
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert child.returncode != 0, "the conversion finished before it could be killed"
    kept = set(journalled(out, source))
    unfinished = [
        p for p in out.rglob("*") if p.is_file() and p.parent.parent.name == "0" and p not in kept
    ]
    assert unfinished, "no chunk of an unfinished row was on disk"
    cut = unfinished[0]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    run_job(convert_to_omezarr(source, out, chunk=CHUNK))
    assert chunk_files(out) == chunk_files(converted)
    with open_slide(out) as done, open_slide(converted) as whole:
        assert np.array_equal(np.asarray(done.levels[0][:, :]), np.asarray(whole.levels[0][:, :]))


def test_array_metadata_is_what_zarr_python_writes(converted: Path, tmp_path: Path) -> None:
    """The converter writes ``.zarray`` itself (zarr's API costs ~20 ms a conversion): the
    same metadata zarr-python writes for that array, and zarr opens it as such."""
    for level in sorted(p for p in converted.iterdir() if p.is_dir()):
        ours = json.loads((level / ".zarray").read_text())
        group = zarr.open_group(tmp_path / f"{level.name}.zarr", mode="w", zarr_format=2)
        array = zarr.open_array(converted / level.name, mode="r")
        group.create_array(
            "a",
            shape=array.shape,
            chunks=array.chunks,
            dtype="uint8",
            compressors=array.compressors,
            filters=array.filters or None,
            fill_value=255,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        assert ours == json.loads((tmp_path / f"{level.name}.zarr" / "a" / ".zarray").read_text())
    assert json.loads((converted / ".zgroup").read_text()) == {"zarr_format": 2}


def test_a_kill_before_the_group_marker_resumes(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    """A kill between the group's attributes and its ``.zgroup``: the next run goes on."""
    out = tmp_path / "early.zarr"
    job = convert_to_omezarr(source, out, chunk=CHUNK)
    next(job)  # the group and its first block are written
    job.close()
    (out / ".zgroup").unlink()
    run_job(convert_to_omezarr(source, out, chunk=CHUNK))
    assert chunk_files(out) == chunk_files(converted)
    junk = tmp_path / "junk.zarr"
    junk.mkdir()
    (junk / ".zgroup").write_text("{not json")
    with pytest.raises(ConversionError, match="not a readable zarr group"):
        run_job(convert_to_omezarr(source, junk, chunk=CHUNK))


def test_a_journal_line_cut_short_does_not_count(tmp_path: Path) -> None:
    from slidescope.app.slides.convert import Journal

    path = tmp_path / JOURNAL
    path.write_bytes(b"0 0\n0 1\n0 1")  # the kill fell inside "0 12\n"
    journal = Journal(path)
    assert journal.has(0, 0)
    assert journal.has(0, 1)
    assert not journal.has(0, 12)
    journal.add(0, 2)
    journal.close()
    assert path.read_bytes() == b"0 0\n0 1\n0 2\n"


def test_stages_make_the_computed_levels_in_memory() -> None:
    """A block of at most 2048 px halves into the computed levels below it; a level the
    source has starts a stage of its own."""
    from slidescope.app.slides.pyramid_chunks import PyramidLevel, Stage, plan_stages

    one_level = [PyramidLevel(100_000 >> i, 80_000 >> i, 0 if i == 0 else None) for i in range(9)]
    assert plan_stages(one_level, 240, 2) == [Stage(0, 3), Stage(4, 2), Stage(7, 1)]
    assert plan_stages(one_level, 512, 2) == [Stage(0, 2), Stage(3, 1), Stage(5, 1), Stage(7, 1)]
    # 4× levels: a 2048 px block holds one level below its own (960 px of 240 px chunks
    # make one chunk at 4×); a level read back from the one above stands alone
    by_4 = [PyramidLevel(100_000 >> 2 * i, 80_000 >> 2 * i, None if i else 0) for i in range(5)]
    assert plan_stages(by_4, 240, 4) == [Stage(0, 1), Stage(2, 0), Stage(3, 0), Stage(4, 0)]
    assert plan_stages(by_4, 64, 4) == [Stage(0, 2), Stage(3, 1)]
    # a level stored as it is is never held in memory: its blocks span 4× as much, and
    # make two 4× levels (a 3,840 px block of 240 px tiles holds 960 px at the 4× level)
    stored = [True, False, False, False, False]
    assert plan_stages(by_4, 240, 4, stored) == [Stage(0, 2), Stage(3, 0), Stage(4, 0)]
    every_2x = plan_stages(one_level, 240, 2, [True] + [False] * 8)
    assert every_2x == [Stage(0, 4), Stage(5, 2), Stage(8, 0)]
    # an Aperio pyramid with every 2× level computed: 1×, 4×, 16×, with the 2× and 8× made
    aperio = [PyramidLevel(1, 1, s) for s in (0, None, 1, None, 2, None)]
    assert plan_stages(aperio, 240, 2) == [Stage(0, 1), Stage(2, 1), Stage(4, 1)]
    every = [PyramidLevel(1, 1, s) for s in (0, 1, 2)]
    assert plan_stages(every, 512, 4) == [Stage(0, 0), Stage(1, 0), Stage(2, 0)]


def test_a_damaged_tile_stops_the_conversion_with_its_error(tmp_path: Path) -> None:
    path = tmp_path / "damaged.tiff"
    tifffile.imwrite(path, smooth_image(1100, 1500, 5), tile=(256, 256), photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["TileByteCounts"]
        offset, itemsize = tag.valueoffset, tag.valuebytecount // tag.count
    with path.open("r+b") as fh:  # tile 13 (row 2, column 1) claims zero bytes
        fh.seek(offset + 13 * itemsize)
        fh.write(bytes(itemsize))
    out = tmp_path / "damaged.zarr"
    with pytest.raises(CorruptSlideError, match="zero length"):
        run_job(convert_to_omezarr(path, out, chunk=CHUNK))
    with pytest.raises(IncompleteConversionError):
        open_slide(out)


def test_a_finished_conversion_is_left_alone(source: Path, converted: Path) -> None:
    inodes = {p: p.stat().st_ino for p in converted.rglob("*") if p.is_file()}
    run_job(convert_to_omezarr(source, converted, chunk=CHUNK))
    assert {p: p.stat().st_ino for p in converted.rglob("*") if p.is_file()} == inodes


def test_output_of_another_slide_or_other_settings_is_refused(
    source: Path, converted: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConversionError, match="chunk"):
        run_job(convert_to_omezarr(source, converted, chunk=512))
    other = tmp_path / "other.tiff"
    tifffile.imwrite(other, smooth_image(600, 600, 3), tile=(256, 256), photometric="rgb")
    with pytest.raises(ConversionError, match="different slide"):
        run_job(convert_to_omezarr(other, converted, chunk=CHUNK))
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(foreign, mode="w", zarr_format=2)
    with pytest.raises(ConversionError, match="not written by slidescope"):
        run_job(convert_to_omezarr(source, foreign, chunk=CHUNK))
    with pytest.raises(ConversionError, match="threads"):
        run_job(convert_to_omezarr(source, tmp_path / "x.zarr", threads=0))
    with pytest.raises(ConversionError, match="unknown compression"):
        run_job(convert_to_omezarr(source, tmp_path / "x.zarr", compression="png"))
    with pytest.raises(ConversionError, match="level_step must be 2 or 4, got 3"):
        run_job(convert_to_omezarr(source, tmp_path / "x.zarr", level_step=3))


def test_an_unfinished_conversion_of_other_levels_is_refused(source: Path, tmp_path: Path) -> None:
    """Resuming with another level step, or one the previous chunk layout (every 2× level)
    started, would mix two pyramids: refused, saying what to do."""
    out = tmp_path / "unfinished.zarr"
    job = convert_to_omezarr(source, out, chunk=CHUNK, level_step=2)
    next(job)
    job.close()  # cancelled after its first chunks
    with pytest.raises(ConversionError, match="level_step=2, not 4"):
        run_job(convert_to_omezarr(source, out, chunk=CHUNK))
    attrs = json.loads((out / ".zattrs").read_text())
    attrs["slidescope"]["layout"] = 3
    (out / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(ConversionError, match="chunk layout 3, this one writes 4"):
        run_job(convert_to_omezarr(source, out, chunk=CHUNK, level_step=2))


@pytest.mark.parametrize("compression", ["zstd-delta", "lz4", "none"])
def test_other_lossless_compressions_give_the_same_pyramid(
    source: Path, converted: Path, tmp_path: Path, compression: str
) -> None:
    out = tmp_path / f"{compression}.zarr"
    run_job(convert_to_omezarr(source, out, compression=compression, chunk=CHUNK))
    with open_slide(converted) as zstd, open_slide(out) as other:
        assert other.level_dimensions == zstd.level_dimensions
        for a, b in zip(zstd.levels, other.levels):
            assert np.array_equal(np.asarray(a[:, :]), np.asarray(b[:, :]))
        level0 = np.asarray(zstd.levels[0][:, :]).transpose(2, 0, 1)
    # the same reader napari-ome-zarr uses decodes it (filters included)
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image = next(iter(Reader(parse_url(str(out)))()))
    assert np.array_equal(np.asarray(image.data[0]), level0)


def test_jpeg_compression_is_lossy_but_close(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "jpeg.zarr"
    run_job(convert_to_omezarr(source, out, compression="jpeg", chunk=CHUNK))
    with open_slide(source) as src, open_slide(out) as lossy:
        a = np.asarray(lossy.levels[0][:, :]).astype(int)
        b = np.asarray(src.levels[0][:, :]).astype(int)
        assert not src.lossy  # zlib: the default would have been lossless
        assert lossy.lossy
    assert np.abs(a - b).mean() < 4


@pytest.fixture(scope="module")
def jpeg_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JPEG-tiled TIFF (tables in the JPEGTables tag, as scanners write) with a 2× level."""
    path = tmp_path_factory.mktemp("jpeg") / "jpeg slide.tiff"
    level0 = smooth_image(1100, 1500, 6)
    level0[:512, :512] = (244, 243, 246)
    write_jpeg_pyramid(path, level0, 2)
    return path


def write_jpeg_pyramid(path: Path, level0: np.ndarray, step: int) -> None:
    """A JPEG-tiled TIFF (256 px tiles, quality 80) of ``level0`` and its ``step``× level."""
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for index, image in enumerate((level0, box_mean(level0, step))):
            tif.write(
                image,
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": 80},
                photometric="rgb",
                resolution=(1e4 / (MPP * step**index),) * 2,
                resolutionunit="CENTIMETER",
                subfiletype=1 if index else 0,
            )


def stored_tiles(path: Path, level: int) -> list[bytes]:
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[level].pages[0]
        fh = tif.filehandle
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            fh.seek(offset)
            tiles.append(fh.read(count))
        return tiles


def test_a_jpeg_source_keeps_its_tiles_as_they_are(jpeg_source: Path, tmp_path: Path) -> None:
    """The default for a JPEG source: its tiles are the chunks, byte for byte."""
    out = run_job(convert_to_omezarr(jpeg_source, tmp_path / "kept.zarr"))
    attrs = json.loads((out / ".zattrs").read_text())["slidescope"]
    assert (attrs["compression"], attrs["chunk"]) == ("jpeg", 256)
    for level in (0, 1):
        tiles = stored_tiles(jpeg_source, level)
        across = -(-(1500 >> level) // 256)
        for index, tile in enumerate(tiles):
            row, col = divmod(index, across)
            assert (out / f"{level}/0/{row}/{col}").read_bytes() == tile
    with open_slide(jpeg_source) as src, open_slide(out) as done:
        assert src.lossy
        assert done.lossy
        assert done.level_dimensions == [(1500, 1100), (750, 550), (187, 137)]
        for level in (0, 1):  # the same pixels, bit for bit
            assert np.array_equal(
                np.asarray(done.levels[level][:, :]), np.asarray(src.levels[level][:, :])
            )
        # the computed level: the 4×4 mean (level 1's tiles decoded at a quarter of their
        # size), then JPEG at the source's quality
        level2 = np.asarray(done.levels[2][:, :]).astype(int)
        assert np.abs(level2 - box_mean(np.asarray(src.levels[1][:, :]), 4)).mean() < 2
    source_bytes = jpeg_source.stat().st_size
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) < 1.5 * source_bytes
    # the reader napari-ome-zarr uses decodes the chain (JPEG, then Shuffle to planes)
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image = next(iter(Reader(parse_url(str(out)))()))
    with open_slide(jpeg_source) as src:
        expected = np.asarray(src.levels[0][:, :]).transpose(2, 0, 1)
    assert np.array_equal(np.asarray(image.data[0]), expected)


def test_a_scanners_4x_pyramid_is_copied_as_it_is(tmp_path: Path) -> None:
    """An Aperio-style pyramid (1×, 4×): both levels' tiles are the chunks, nothing is
    computed between them; below the 4× level, one computed 4× level reaches one chunk.
    With ``level_step=2`` the 2× level between them is computed (and 2× levels below)."""
    path = tmp_path / "scanner.tiff"
    level0 = smooth_image(2048, 3072, 8)
    write_jpeg_pyramid(path, level0, 4)
    out = run_job(convert_to_omezarr(path, tmp_path / "scanner.zarr"))
    with open_slide(out) as done:
        assert done.level_dimensions == [(3072, 2048), (768, 512), (192, 128)]
        assert done.downsamples == pytest.approx([1, 4, 16])
    for level in (0, 1):
        tiles = stored_tiles(path, level)
        across = -(-(3072 >> 2 * level) // 256)
        assert len(tiles) == len(list((out / str(level) / "0").glob("*/*")))
        for index, tile in enumerate(tiles):
            row, col = divmod(index, across)
            assert (out / f"{level}/0/{row}/{col}").read_bytes() == tile
    every = run_job(convert_to_omezarr(path, tmp_path / "every-2x.zarr", level_step=2))
    with open_slide(every) as done:
        dims = [(3072, 2048), (1536, 1024), (768, 512), (384, 256), (192, 128)]
        assert done.level_dimensions == dims
        assert (every / "2/0/1/2").read_bytes() == stored_tiles(path, 1)[1 * 3 + 2]


def test_other_chunks_or_lossless_re_encode_a_jpeg_source(
    jpeg_source: Path, tmp_path: Path
) -> None:
    out = run_job(convert_to_omezarr(jpeg_source, tmp_path / "512.zarr", chunk=512))
    with open_slide(jpeg_source) as src, open_slide(out) as done:
        a = np.asarray(done.levels[0][:, :]).astype(int)
        b = np.asarray(src.levels[0][:, :]).astype(int)
        assert 0 < np.abs(a - b).mean() < 2  # re-encoded at quality 90
    lossless = run_job(convert_to_omezarr(jpeg_source, tmp_path / "zstd.zarr", compression="zstd"))
    with open_slide(jpeg_source) as src, open_slide(lossless) as done:
        assert not done.lossy
        assert np.array_equal(np.asarray(done.levels[0][:, :]), np.asarray(src.levels[0][:, :]))


def test_a_jpeg_tile_cut_short_is_decoded_not_copied(jpeg_source: Path, tmp_path: Path) -> None:
    """A tile without its end is not stored as it is: the chunk holds what readers decode."""
    path = tmp_path / "cut.tiff"
    path.write_bytes(jpeg_source.read_bytes())
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[7], page.databytecounts[7]
    with path.open("r+b") as fh:  # tile 7 loses its second half, end marker included
        fh.seek(offset + count // 2)
        fh.write(bytes(count - count // 2))
    out = run_job(convert_to_omezarr(path, tmp_path / "cut.zarr"))
    chunk = (out / "0/0/1/1").read_bytes()  # tile 7: row 1, column 1 of 6
    assert chunk.endswith(b"\xff\xd9")  # a whole stream, not the cut tile
    with open_slide(path) as src, open_slide(out) as done:
        kept = np.asarray(done.levels[0][256:512, 256:512]).astype(int)
        read = np.asarray(src.read_region((256, 256), 0, (256, 256))).astype(int)
    assert np.abs(kept - read).mean() < 2  # what the reader makes of it, re-encoded


def test_real_aperio_slide_converts(aperio_svs: Path, tmp_path: Path) -> None:
    """Aperio: 240 px JPEG tiles (tables in one tag, RGB colour space) and no pyramid."""
    out = tmp_path / "aperio.zarr"
    run_job(convert_to_omezarr(aperio_svs, out))
    with open_slide(aperio_svs) as src, open_slide(out) as done:
        assert done.dimensions == src.dimensions == (2220, 2967)
        assert done.mpp == pytest.approx(src.mpp)
        assert np.array_equal(np.asarray(done.levels[0][:, :]), np.asarray(src.levels[0][:, :]))
        # 2967 -> 741 -> 185, computed 4× levels, in 240 px chunks as the source's tiles
        assert done.level_dimensions == [(2220, 2967), (555, 741), (138, 185)]
        # level 1: the tiles decoded at a quarter of their size, then JPEG at the source's
        # quality (70): as far from the 4×4 mean as a second JPEG generation goes (simplejpeg
        # at quality 70 on the exact 4×4 mean: 4.54; on the 2×2 mean: 4.22)
        level1 = np.asarray(done.levels[1][:, :]).astype(int)
        assert np.abs(level1 - box_mean(np.asarray(src.levels[0][:, :]), 4)).mean() < 5
        # level 2 made in the same block, from level 1's pixels before their JPEG: as close
        # as a quality-70 JPEG of 16×16 means comes (5.0; misplaced pixels differ by 20-40)
        level2 = np.asarray(done.levels[2][:, :]).astype(int)
        expected = box_mean(box_mean(np.asarray(src.levels[0][:, :]), 4), 4)
        assert np.abs(level2 - expected).mean() < 6
    assert (out / "0/0/3/4").read_bytes() == stored_tiles(aperio_svs, 0)[3 * 10 + 4]
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 1.5 * aperio_svs.stat().st_size
    lossless = run_job(convert_to_omezarr(aperio_svs, tmp_path / "lossless.zarr", "zstd"))
    with open_slide(aperio_svs) as src, open_slide(lossless) as done:
        assert len(done.levels) == 3  # 2967 -> 741 -> 185: the first under one 512 px chunk
        region = (1000, 1200)
        assert np.array_equal(
            done.read_region(region, 0, (600, 500)), src.read_region(region, 0, (600, 500))
        )


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("which", ["aperio (RGB, tables in a tag)", "YCbCr 4:2:0"])
def test_stored_jpeg_tiles_decode_scaled_as_their_box_mean(
    which: str, factor: int, aperio_svs: Path, jpeg_source: Path
) -> None:
    import dataclasses

    from slidescope.app.slides.chunk_codec import chunk_codec, scaled_decoder

    with open_slide(aperio_svs if which.startswith("aperio") else jpeg_source) as slide:
        reader = slide._stored_tiles(0)
        tiles = reader.jpeg_tiles()
        codec = chunk_codec("jpeg", tiles.tile, tiles)
        data = reader.stored_tile(1, 1)
    decoder = scaled_decoder(tiles, data, codec, factor)
    assert decoder is not None
    small = decoder.decode(data).astype(int)
    assert small.shape == (tiles.tile // factor, tiles.tile // factor, 3)
    assert np.abs(small - box_mean(codec.decode(data), factor)).mean() < 1
    assert decoder.decode(data[: len(data) // 3]) is None  # cut short: decoded in full instead
    if data.startswith(b"\xff\xd8\xff\xe0"):
        # a JFIF stream in a TIFF that calls its tiles RGB: stored chunks decode as the TIFF
        # says (the codec is told), the scaled decoder as JFIF says (YCbCr): the check on a
        # sample sees they differ and refuses it
        rgb = dataclasses.replace(tiles, colorspace=2)
        assert scaled_decoder(rgb, data, chunk_codec("jpeg", tiles.tile, rgb), factor) is None
    with pytest.raises(ValueError, match="1/2, 1/4 or 1/8"):
        scaled_decoder(tiles, data, codec, 3)


def test_cli_offers_the_converters_choices() -> None:
    from slidescope.app.cli.commands import convert as command
    from slidescope.app.slides import chunk_codec, convert

    assert command.COMPRESSIONS == convert.COMPRESSIONS
    assert command.LOSSLESS == chunk_codec.LOSSLESS
    assert (command.LEVEL_STEPS, command.LEVEL_STEP) == (convert.LEVEL_STEPS, convert.LEVEL_STEP)


def test_cli_lossless_and_compression_exclude_each_other(
    jpeg_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.zarr"
    assert main(["convert", str(jpeg_source), str(out), "--lossless", "--quiet"]) == 0
    assert "(zstd, 512 px chunks)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        main(["convert", str(jpeg_source), str(out), "--lossless", "--compression", "jpeg"])
    assert stopped.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_cli_converts_and_reports(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli out.zarr"
    assert (
        main(["convert", str(source), str(out), "--chunk", "256", "--threads", "1", "--quiet"])
        == 0
    )
    assert "OME-Zarr" in capsys.readouterr().out
    with open_slide(out) as slide:
        assert slide.dimensions == (1500, 1100)
    assert main(["convert", str(tmp_path / "missing.svs"), str(out), "--quiet"]) == 2


def test_jpeg_pyramid_opens_in_a_reader_that_registers_nothing(
    tmp_path: Path, aperio_svs: Path
) -> None:
    """The ``numcodecs.codecs`` entry point: a fresh process decodes imagecodecs' JPEG chunks."""
    import subprocess
    import sys

    out = run_job(convert_to_omezarr(aperio_svs, tmp_path / "jpeg.ome.zarr", compression="jpeg"))
    code = (
        "import sys, numpy as np, zarr; a = zarr.open_group(sys.argv[1], mode='r')['0'];"
        "print(int(np.asarray(a[:, 1000:1010, 1000:1010]).std() > 0))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "1"


def test_the_source_jpeg_quality_is_read_from_its_tables() -> None:
    import imagecodecs
    from slidescope.app.slides.chunk_codec import jpeg_quality

    pixels = smooth_image(64, 64, 9)
    for quality in (30, 75, 80, 95):
        assert jpeg_quality(bytes(imagecodecs.jpeg8_encode(pixels, level=quality))) == quality
    assert jpeg_quality(b"") is None
    assert jpeg_quality(b"\xff\xd8 no tables \xff\xd9") is None


def test_a_small_slide_converts_on_one_thread(aperio_svs: Path) -> None:
    """Under 4096² px a second thread's hand-overs cost more CPU than its time saves."""
    from slidescope.app.slides.convert import SMALL_SLIDE_PIXELS, _threads

    with open_slide(aperio_svs) as small:
        assert small.dimensions[0] * small.dimensions[1] < SMALL_SLIDE_PIXELS
        assert _threads(small) == 1
    assert 2 <= _threads() <= 4

    class Big:
        dimensions = (100_000, 80_000)

    assert _threads(Big()) == _threads()  # type: ignore[arg-type]
