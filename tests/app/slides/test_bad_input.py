"""Bad input: every broken file gives a ``SlideError`` naming the file and the reason.

Broken files are made from good ones by patching bytes, as OpenSlide's own test suite does:
a truncated TIFF, a tile whose byte count is zero, a compression nobody decodes, a tile of
garbage. Damage at the top fails at open; damage deep inside fails when that tile is read,
never with a crash and never as silently black pixels.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image
from slide_builders import TILE, patch_bytes, tiff_tag, write_ome_zarr
from slidescope.app.cli import main as cli_main
from slidescope.app.errors import SlideScopeError
from slidescope.app.slides import (
    CorruptSlideError,
    IncompleteConversionError,
    SlideError,
    SlideNotFoundError,
    UnsupportedCompressionError,
    UnsupportedSlideError,
    open_slide,
)


def _copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target


def _assert_names_file(error: SlideError, path: Path) -> None:
    assert isinstance(error, SlideScopeError)
    assert error.path == path
    assert str(error).startswith(str(path))
    assert error.reason
    assert error.reason in str(error)


# -- not a slide at all ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.svs"
    with pytest.raises(SlideNotFoundError) as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)
    assert isinstance(caught.value, FileNotFoundError)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.svs"
    path.write_text("patient notes, not a slide\n")
    with pytest.raises(UnsupportedSlideError) as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)
    assert "not a slide" in caught.value.reason


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tiff"
    path.write_bytes(b"")
    with pytest.raises(UnsupportedSlideError):
        open_slide(path)


def test_png_image(tmp_path: Path, he_image: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(he_image[:100, :100]).save(path)
    with pytest.raises(UnsupportedSlideError) as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)


def test_directory_that_is_no_zarr(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSlideError, match="no OME-Zarr"):
        open_slide(tmp_path)


def test_zarr_without_multiscales(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    zarr.open_group(path, mode="w").create_array("0", shape=(10, 10), dtype="uint8")
    with pytest.raises(UnsupportedSlideError, match="multiscales"):
        open_slide(path)


@pytest.mark.parametrize("mpp", [0.0, -0.5, float("nan"), (0.25,)])
def test_impossible_mpp_override(generic_tiff: Path, mpp: object) -> None:
    with pytest.raises(SlideError, match="microns per pixel"):
        open_slide(generic_tiff, mpp=mpp)  # type: ignore[arg-type]


# -- truncated ------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [6, 100])
def test_tiff_truncated_in_its_header(tmp_path: Path, generic_tiff: Path, keep: int) -> None:
    path = tmp_path / "cut.tiff"
    path.write_bytes(generic_tiff.read_bytes()[:keep])
    with pytest.raises(CorruptSlideError) as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)


def test_tiff_cut_before_its_first_image_directory_says_so(tmp_path: Path) -> None:
    """A copy that stopped early: the writer put the image directories after the pixels."""
    from slidescope.app.demo.generate import generate_demo_slide
    from slidescope.app.jobs import run_job

    whole = run_job(generate_demo_slide(tmp_path / "whole.tiff", 1024, 1024, seed=3)).path
    data = whole.read_bytes()
    first = struct.unpack("<Q", data[8:16])[0]  # a BigTIFF: its first directory's offset
    assert first > 30_000  # the pixels come first
    path = tmp_path / "cut.tiff"
    path.write_bytes(data[:30_000])
    with pytest.raises(CorruptSlideError, match="cut short") as caught:
        open_slide(path)
    assert f"starts at byte {first:,}, past its end (30,000 bytes)" in str(caught.value)
    _assert_names_file(caught.value, path)


def test_tiff_truncated_inside_level0(tmp_path: Path, generic_tiff: Path) -> None:
    with tifffile.TiffFile(generic_tiff) as tif:
        offsets = tif.pages[0].dataoffsets
    # Keep the first IFD and the first tiles; lose the rest of level 0 and every other level.
    path = tmp_path / "cut.tiff"
    path.write_bytes(generic_tiff.read_bytes()[: offsets[len(offsets) // 2]])
    with open_slide(path) as slide:
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (TILE, TILE)),
            open_slide(generic_tiff).read_region((0, 0), 0, (TILE, TILE)),
        )
        w, h = slide.dimensions
        with pytest.raises(CorruptSlideError, match="truncated") as caught:
            slide.read_region((w - TILE, h - TILE), 0, (TILE, TILE))
        _assert_names_file(caught.value, path)
        with pytest.raises(CorruptSlideError, match="truncated"):
            np.asarray(slide.levels[0])


# -- a tile of zero length ------------------------------------------------------------------


@pytest.fixture
def zero_tile_tiff(tmp_path: Path, generic_tiff: Path) -> tuple[Path, int]:
    """The generic TIFF with level 0's tile 5 (row 1, column 0) given zero bytes."""
    path = _copy(generic_tiff, tmp_path / "zero tile.tiff")
    offset, _count, dtype = tiff_tag(path, 0, "TileByteCounts")
    index = 5
    patch_bytes(path, offset + index * dtype.itemsize, np.zeros(1, dtype).tobytes())
    return path, index


def test_zero_length_tile_raises_when_read(zero_tile_tiff: tuple[Path, int]) -> None:
    path, index = zero_tile_tiff
    with open_slide(path) as slide:
        across = -(-slide.dimensions[0] // TILE)
        row, col = divmod(index, across)
        # Healthy tiles still read.
        assert slide.read_region((0, 0), 0, (TILE, TILE)).std() > 0
        with pytest.raises(CorruptSlideError, match="zero length") as caught:
            slide.read_region((col * TILE + 10, row * TILE + 10), 0, (32, 32))
        _assert_names_file(caught.value, path)
        # The zarr view refuses the damaged tile too, instead of returning zeros.
        with pytest.raises(CorruptSlideError, match="zero length"):
            slide.levels[0][row * TILE : row * TILE + 5, col * TILE : col * TILE + 5]
        with pytest.raises(CorruptSlideError, match="zero length"):
            slide.levels[0][..., 0]
        assert np.asarray(slide.levels[0][:5, :5]).std() > 0
        with pytest.raises(CorruptSlideError):
            slide.thumbnail(2000)


# -- a compression nobody can decode --------------------------------------------------------


def test_unknown_compression(tmp_path: Path, generic_tiff: Path) -> None:
    path = _copy(generic_tiff, tmp_path / "odd codec.tiff")
    offset, _, dtype = tiff_tag(path, 0, "Compression")
    patch_bytes(path, offset, np.array([0xBEEF], dtype).tobytes())
    with pytest.raises(UnsupportedCompressionError) as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)
    assert str(0xBEEF) in caught.value.reason


# -- garbage where a tile should be ---------------------------------------------------------


def test_garbage_tile_raises_when_read(tmp_path: Path, generic_tiff: Path) -> None:
    path = _copy(generic_tiff, tmp_path / "garbage.tiff")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[3], page.databytecounts[3]
    patch_bytes(path, offset, struct.pack("<I", 0xDEADBEEF) * (count // 4))
    with open_slide(path) as slide:
        with pytest.raises(CorruptSlideError, match="cannot be decoded") as caught:
            slide.read_region((3 * TILE, 0), 0, (64, 64))
        _assert_names_file(caught.value, path)
        assert slide.read_region((0, 0), 0, (64, 64)).std() > 0


# -- unfinished or broken OME-Zarr ----------------------------------------------------------


def test_incomplete_conversion_is_refused(tmp_path: Path, he_image: np.ndarray) -> None:
    path = write_ome_zarr(tmp_path / "half.ome.zarr", he_image[:300, :300], finished=False)
    with pytest.raises(IncompleteConversionError, match="incomplete conversion") as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)
    assert isinstance(caught.value, CorruptSlideError)


def test_conversion_marked_unfinished_is_refused(tmp_path: Path, he_image: np.ndarray) -> None:
    path = write_ome_zarr(tmp_path / "resumed.ome.zarr", he_image[:300, :300], version="0.5")
    root = zarr.open_group(path, mode="r+")
    root.attrs["slidescope"] = {**root.attrs["slidescope"], "complete": False}
    with pytest.raises(IncompleteConversionError, match="run `slidescope convert` again"):
        open_slide(path)


def test_ome_zarr_with_an_unknown_codec(tmp_path: Path, he_image: np.ndarray) -> None:
    path = write_ome_zarr(tmp_path / "odd codec.ome.zarr", he_image[:300, :300], version="0.4")
    meta_path = path / "0" / ".zarray"
    meta = json.loads(meta_path.read_text())
    meta["compressor"] = {"id": "no_such_codec_anywhere"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UnsupportedCompressionError, match="no_such_codec_anywhere") as caught:
        open_slide(path)
    _assert_names_file(caught.value, path)


def test_ome_zarr_with_a_damaged_chunk(tmp_path: Path, he_image: np.ndarray) -> None:
    path = write_ome_zarr(tmp_path / "damaged.ome.zarr", he_image[:600, :600], version="0.4")
    patch_bytes(path / "0" / "0.1.1", 0, b"\x00garbage, not zstd\x00" * 8)
    with open_slide(path) as slide:
        assert slide.read_region((0, 0), 0, (100, 100)).std() > 0
        with pytest.raises(
            CorruptSlideError, match=r"chunk \(1, 1\) of level 0 cannot be"
        ) as caught:
            slide.read_region((TILE + 10, TILE + 10), 0, (50, 50))
        _assert_names_file(caught.value, path)
        with pytest.raises(CorruptSlideError):
            np.asarray(slide.levels[0])


def test_ome_zarr_with_a_missing_level(tmp_path: Path, he_image: np.ndarray) -> None:
    path = write_ome_zarr(tmp_path / "holey.ome.zarr", he_image[:300, :300], version="0.5")
    shutil.rmtree(path / "1")
    with pytest.raises(CorruptSlideError, match="level 1"):
        open_slide(path)


# -- good files in awkward places -----------------------------------------------------------


def test_non_ascii_path_with_spaces(tmp_path: Path, aperio_svs: Path) -> None:
    folder = tmp_path / "Präparate für Dr. Ødegård"
    folder.mkdir()
    path = _copy(aperio_svs, folder / "Schnitt 1 – Gewebe.svs")
    with open_slide(path) as slide, open_slide(aperio_svs) as original:
        assert slide.format == "aperio"
        assert slide.identity.slide_id == "Schnitt 1 – Gewebe"
        np.testing.assert_array_equal(
            slide.read_region((500, 700), 0, (256, 256)),
            original.read_region((500, 700), 0, (256, 256)),
        )


def test_stripped_tiff_is_served_by_tifffile(tmp_path: Path, he_image: np.ndarray) -> None:
    # No tiles: OpenSlide refuses it, tifffile reads it strip by strip.
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, he_image[:200, :300], photometric="rgb", rowsperstrip=16)
    with open_slide(path) as slide:
        assert slide.format == "generic-tiff"
        assert slide.mpp is None
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (300, 200)), he_image[:200, :300]
        )


def test_rgba_and_grey_tiffs_become_rgb(tmp_path: Path, he_image: np.ndarray) -> None:
    rgba = np.dstack([he_image[:256, :256], np.full((256, 256), 255, np.uint8)])
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", tile=(128, 128))
    grey = he_image[:256, :256, 1]
    tifffile.imwrite(tmp_path / "grey.tif", grey, photometric="minisblack", tile=(128, 128))
    with open_slide(tmp_path / "rgba.tif") as slide:
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (256, 256)), rgba[..., :3])
        np.testing.assert_array_equal(np.asarray(slide.levels[0]), rgba[..., :3])
    with open_slide(tmp_path / "grey.tif") as slide:
        expected = np.repeat(grey[..., None], 3, axis=2)
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, (256, 256)), expected)
        np.testing.assert_array_equal(np.asarray(slide.levels[0]), expected)


def test_missing_mpp_is_asked_for(tmp_path: Path, he_image: np.ndarray) -> None:
    path = tmp_path / "no mpp.tiff"
    tifffile.imwrite(path, he_image[:256, :256], photometric="rgb", tile=(128, 128))
    with open_slide(path) as slide:
        assert slide.mpp is None
        with pytest.raises(SlideScopeError, match="--slide-mpp"):
            slide.require_mpp()
    with open_slide(path, mpp=0.5) as slide:
        assert slide.require_mpp() == (0.5, 0.5)


# -- the command line prints errors without a traceback -------------------------------------


def test_cli_info_on_broken_files(
    tmp_path: Path, generic_tiff: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "readme.svs"
    text.write_text("not a slide")
    odd = _copy(generic_tiff, tmp_path / "odd.tiff")
    offset, _, dtype = tiff_tag(odd, 0, "Compression")
    patch_bytes(odd, offset, np.array([0xBEEF], dtype).tobytes())
    for path in (tmp_path / "missing.svs", text, odd):
        assert cli_main(["info", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err
        assert "Traceback" not in err
