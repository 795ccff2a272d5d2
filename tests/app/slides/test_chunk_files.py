"""The converted pyramid's fast road: chunk files decoded straight, the same pixels as zarr's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from slidescope.app.jobs import run_job
from slidescope.app.slides import CorruptSlideError, open_slide
from slidescope.app.slides.chunk_files import ChunkFileReader
from slidescope.app.slides.convert import convert_to_omezarr
from slidescope.app.slides.tile_reader import ChunkReader


def texture(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 0.7) % 256, (yy * 0.4) % 256, ((xx - yy) * 0.2) % 256], -1)
    return (image + rng.integers(0, 12, image.shape)).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "slide.tiff"
    tifffile.imwrite(
        path,
        texture(700, 900),
        tile=(128, 128),
        compression="jpeg",
        photometric="rgb",
        resolution=(1e4 / 0.5,) * 2,
        resolutionunit="CENTIMETER",
    )
    return path


def zarr_road(path: Path, level: int) -> np.ndarray:
    """The level as zarr-python itself decodes it, ``(y, x, 3)``."""
    return np.asarray(zarr.open_group(path, mode="r")[str(level)][:]).transpose(1, 2, 0)


@pytest.mark.parametrize("compression", ["jpeg", "zstd", "zstd-delta", "lz4", "none"])
def test_reads_equal_zarrs_own_decoding(source: Path, tmp_path: Path, compression: str) -> None:
    out = run_job(convert_to_omezarr(source, tmp_path / "out.zarr", compression, chunk=128))
    with open_slide(out) as slide:
        assert all(isinstance(r, ChunkFileReader) for r in slide._readers)
        for level in range(len(slide.levels)):
            w, h = slide.level_dimensions[level]
            expected = zarr_road(out, level)
            assert np.array_equal(slide._read_level(level, 0, h, 0, w), expected)
            # a window across chunk borders, partly through the cache
            assert np.array_equal(
                slide._read_level(level, 5, h - 3, 7, w - 11), expected[5 : h - 3, 7 : w - 11]
            )


def test_one_channel_per_chunk_and_missing_chunks(tmp_path: Path) -> None:
    """Chunks of one channel (the layout of other writers), and a chunk never written."""
    image = texture(300, 400)
    path = tmp_path / "planes.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    array = group.create_array(
        "0",
        shape=(3, 300, 400),
        chunks=(1, 128, 128),
        dtype="uint8",
        fill_value=7,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    array[:] = image.transpose(2, 0, 1)
    (path / "0" / "1" / "2" / "3").unlink()  # green of chunk (2, 3) is the fill value
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
            ],
        }
    ]
    expected = image.copy()
    expected[256:300, 384:400, 1] = 7
    with open_slide(path) as slide:
        assert isinstance(slide._readers[0], ChunkFileReader)
        assert np.array_equal(slide.read_region((0, 0), 0, (400, 300)), expected)


def test_damaged_chunks_name_the_chunk(source: Path, tmp_path: Path) -> None:
    out = run_job(convert_to_omezarr(source, tmp_path / "out.zarr", "zstd", chunk=128))
    (out / "0/0/1/2").write_bytes(b"not zstd at all")
    (out / "0/0/3/3").write_bytes(bytes(4 * 3 * 128 * 128 + 70_000))
    with open_slide(out) as slide:
        with pytest.raises(CorruptSlideError, match=r"chunk \(1, 2\) of level 0"):
            slide.read_region((256, 128), 0, (64, 64))
        with pytest.raises(CorruptSlideError, match="larger than any chunk"):
            slide.read_region((384, 384), 0, (128, 128))
        # the rest still reads
        assert slide.read_region((0, 0), 0, (128, 128)).shape == (128, 128, 3)


def test_a_zarr_v3_pyramid_keeps_zarrs_road(tmp_path: Path) -> None:
    path = tmp_path / "v3.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.create_array("0", shape=(3, 200, 200), chunks=(3, 100, 100), dtype="uint8")[:] = 9
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "y", "type": "space"},
                    {"name": "x", "type": "space"},
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}],
                    }
                ],
            }
        ],
    }
    with open_slide(path, mpp=(0.5, 0.5)) as slide:
        assert isinstance(slide._readers[0], ChunkReader)
        assert (slide.read_region((0, 0), 0, (50, 50)) == 9).all()
