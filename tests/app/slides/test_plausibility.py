"""Sizes checked before allocation, damage recorded, one error family, no third-party logs."""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from slide_builders import TILE, patch_bytes, tiff_tag
from slidescope.app.slides import CorruptSlideError, SlideError, open_slide
from slidescope.app.slides.errors import SlideTooLargeError
from slidescope.app.slides.plausibility import MAX_SIDE


def _copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target


@pytest.mark.parametrize("value", [MAX_SIDE + 1, 2**31 - 1])
def test_absurd_image_size_is_refused_before_reading(
    tmp_path: Path, generic_tiff: Path, value: int
) -> None:
    path = _copy(generic_tiff, tmp_path / "huge.tiff")
    offset, _, dtype = tiff_tag(path, 0, "ImageWidth")
    patch_bytes(path, offset, np.array([value], dtype).tobytes())
    with pytest.raises(SlideError) as caught:
        open_slide(path)
    assert caught.value.path == path
    assert isinstance(caught.value, (SlideTooLargeError, CorruptSlideError))


@pytest.mark.parametrize("value", [0, 65_535])
def test_absurd_tile_size_is_refused(tmp_path: Path, generic_tiff: Path, value: int) -> None:
    path = _copy(generic_tiff, tmp_path / "tiles.tiff")
    offset, _, dtype = tiff_tag(path, 0, "TileWidth")
    patch_bytes(path, offset, np.array([value], dtype).tobytes())
    with pytest.raises(SlideError):
        open_slide(path)


def test_truncated_file_drops_its_missing_levels_and_says_so(
    tmp_path: Path, generic_tiff: Path
) -> None:
    with tifffile.TiffFile(generic_tiff) as tif:
        level1 = tif.pages[1]
        cut = int(level1.dataoffsets[-1])  # the last tile of level 1 is lost
    path = tmp_path / "cut.tiff"
    path.write_bytes(generic_tiff.read_bytes()[:cut])
    with open_slide(path) as slide, open_slide(generic_tiff) as whole:
        assert len(slide.levels) < len(whole.levels)
        assert any("left out" in p and "past the end" in p for p in slide.problems)
        assert whole.problems == []
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (TILE, TILE)), whole.read_region((0, 0), 0, (TILE, TILE))
        )


def test_garbage_in_a_healthy_looking_tile_fails_as_a_slide_error_everywhere(
    tmp_path: Path, generic_tiff: Path
) -> None:
    path = _copy(generic_tiff, tmp_path / "garbage.tiff")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    patch_bytes(path, offset, struct.pack("<I", 0xDEADBEEF) * (count // 4))
    with open_slide(path) as slide:
        # the level array (zarr through tifffile's codecs), read_region and the thumbnail
        with pytest.raises(CorruptSlideError, match="level 0"):
            slide.levels[0][:10, :10]
        with pytest.raises(CorruptSlideError):
            slide.read_region((0, 0), 0, (64, 64))
        with pytest.raises(CorruptSlideError):
            slide.thumbnail(4000)


def test_region_arguments_are_checked(generic_tiff: Path) -> None:
    with open_slide(generic_tiff) as slide:
        with pytest.raises(SlideError, match="no level 9"):
            slide.read_region((0, 0), 9, (10, 10))
        with pytest.raises(SlideTooLargeError):
            slide.read_region((0, 0), 0, (100_000, 100_000))
        with pytest.raises(SlideError, match="negative"):
            slide.read_region((0, 0), 0, (-1, 10))


def test_tifffile_log_lines_go_to_the_slide_not_the_terminal(
    tmp_path: Path, generic_tiff: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _copy(generic_tiff, tmp_path / "odd tag.tiff")
    with tifffile.TiffFile(path) as tif:  # point the first IFD's next-IFD link nowhere
        first = tif.pages[0]
        entries = len(first.tags)
        link = first.offset + 2 + entries * 12
    patch_bytes(path, link, struct.pack("<I", 0x7FFFFFF0))
    logging.getLogger().setLevel(logging.WARNING)
    with open_slide(path) as slide:
        assert any(p.startswith("tifffile:") for p in slide.problems)
    captured = capfd.readouterr()
    assert "tifffile" not in captured.err
    assert captured.err == ""
