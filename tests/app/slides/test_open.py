"""``open_slide`` picks the backend by content, and the ``info`` command reports what it opened."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from slidescope.app.cli import main as cli_main
from slidescope.app.slides import open_slide
from slidescope.app.slides.omezarr_slide import OmeZarrSlide
from slidescope.app.slides.openslide_slide import OpenSlideSlide
from slidescope.app.slides.rgb_view import RGBView
from slidescope.app.slides.tiff_slide import TiffSlide
from slidescope.app.slides.tile_cache import TileCache


def test_backend_is_chosen_by_content_not_suffix(tmp_path: Path, generic_tiff: Path) -> None:
    disguised = tmp_path / "slide.dat"
    shutil.copyfile(generic_tiff, disguised)
    with open_slide(disguised) as slide:
        assert isinstance(slide, TiffSlide)


def test_ome_zarr_directory_opens_natively(ome_zarr_05: Path) -> None:
    with open_slide(str(ome_zarr_05)) as slide:
        assert isinstance(slide, OmeZarrSlide)
        assert slide.properties["ome.version"] == "0.5"


def test_converted_pyramid_keeps_its_source_identity(ome_zarr_04: Path) -> None:
    # write_ome_zarr records a source "he" of the same size: results move between the two.
    with open_slide(ome_zarr_04) as slide:
        assert slide.identity.slide_id == "he"
        assert slide.identity.fingerprint == "0123456789abcdef"
        assert slide.properties["slidescope.source.slide_id"] == "he"
        assert slide.properties["slidescope.complete"] == "True"


def test_info_json(aperio_svs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["info", str(aperio_svs), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "aperio"
    assert info["dimensions"] == [2220, 2967]
    assert info["mpp"] == pytest.approx([0.499, 0.499])
    assert info["level_count"] == 1
    assert info["downsamples"] == [1.0]
    assert set(info["associated_images"]) == {"label", "macro", "thumbnail"}


def test_info_text_and_mpp_override(
    generic_tiff: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["info", str(generic_tiff)]) == 0
    text = capsys.readouterr().out
    assert "generic-tiff" in text
    assert "1200 x 900" in text
    assert "0.25 x 0.25" in text
    assert "level 2: 300 x 225 px, downsample 4" in text
    assert cli_main(["info", str(generic_tiff), "--json", "--slide-mpp", "0.4"]) == 0
    assert json.loads(capsys.readouterr().out)["mpp"] == [0.4, 0.4]


def test_info_without_mpp_says_how(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tifffile

    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8), photometric="rgb", tile=(32, 32))
    assert cli_main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mpp"] is None
    assert cli_main(["info", str(path)]) == 0
    assert "--slide-mpp" in capsys.readouterr().out


# -- the pieces behind the backends ---------------------------------------------------------


@pytest.mark.parametrize("axes", ["cyx", "yxc", "tczyx", "yx"])
def test_rgb_view_of_any_axis_order(axes: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    stored = {
        "cyx": np.moveaxis(rgb, 2, 0),
        "yxc": rgb,
        "tczyx": np.moveaxis(rgb, 2, 0)[None, :, None],
        "yx": rgb[..., 0],
    }[axes]
    expected = rgb if axes != "yx" else np.repeat(rgb[..., :1], 3, axis=2)
    view = RGBView(stored, axes)
    assert view.shape == (40, 50, 3)
    assert view.ndim == 3
    assert view.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(view[5:20, 7:9], expected[5:20, 7:9])
    np.testing.assert_array_equal(view[3, 4], expected[3, 4])
    np.testing.assert_array_equal(view[-1, :, 1], expected[-1, :, 1])
    np.testing.assert_array_equal(view[..., -1], expected[..., -1])


def test_rgb_view_refuses_what_is_no_rgb() -> None:
    with pytest.raises(ValueError, match="channels"):
        RGBView(np.zeros((5, 10, 10), np.uint8), "cyx")
    with pytest.raises(ValueError, match="uint8"):
        RGBView(np.zeros((3, 10, 10), np.uint16), "cyx")


def test_tile_cache_is_bounded_and_least_recently_used() -> None:
    cache = TileCache(max_bytes=3 * 100)
    tiles = {i: np.full(100, i, np.uint8) for i in range(4)}
    for i in range(3):
        cache.put(i, tiles[i])
    assert cache.get(0) is tiles[0]  # 0 is now the most recent; 1 the least
    cache.put(3, tiles[3])
    assert cache.get(1) is None
    assert all(cache.get(i) is tiles[i] for i in (0, 2, 3))
    cache.put("huge", np.zeros(1000, np.uint8))
    assert cache.get("huge") is None


def test_decode_buffers_sit_off_the_32_byte_boundary(tmp_path: Path) -> None:
    # libjpeg-turbo streams 32-byte-aligned output rows past the cache: every buffer a
    # tile is decoded into starts 16 bytes off the boundary, whatever numpy hands out
    import tifffile
    from slidescope.app.slides.decode_buffer import cached_empty

    for shape in [(256, 256, 3), (240, 240, 3), (1, 1, 3), (7, 5)]:
        for _ in range(20):
            array = cached_empty(shape)
            assert array.ctypes.data % 32 == 16
            assert array.shape == shape
            assert array.flags.c_contiguous
            assert array.flags.writeable
    image = np.random.default_rng(2).integers(0, 255, (512, 512, 3)).astype(np.uint8)
    path = tmp_path / "tiled.tiff"
    tifffile.imwrite(path, image, tile=(256, 256), compression="jpeg", photometric="rgb")
    with TiffSlide(path, cache_bytes=0) as slide:
        pixels = slide.read_region((100, 100), 0, (300, 300))  # decodes into the buffer
        reader = slide._readers[0]
        assert reader._local.buffer.ctypes.data % 32 == 16
        expected = tifffile.imread(path)[100:400, 100:400]
        np.testing.assert_array_equal(pixels, expected)


def test_random_reads_keep_no_tiles_walking_reads_keep_their_edges(tmp_path: Path) -> None:
    import tifffile

    image = np.random.default_rng(1).integers(0, 255, (2048, 2048, 3)).astype(np.uint8)
    path = tmp_path / "tiled.tiff"
    tifffile.imwrite(path, image, tile=(256, 256), compression="jpeg", photometric="rgb")
    with TiffSlide(path) as slide, TiffSlide(path, cache_bytes=0) as plain:
        cache = slide._cache
        reference = plain.read_region((0, 0), 0, (2048, 2048))
        spots = [(100, 100), (1300, 200), (300, 1400), (1500, 1500), (40, 900)]
        for x, y in spots:  # far apart: each read jumps (the first one starts a walk)
            np.testing.assert_array_equal(
                slide.read_region((x, y), 0, (300, 300)), reference[y : y + 300, x : x + 300]
            )
        kept = len(cache)
        assert kept <= 4  # the first read's edge tiles at most; no jump kept any
        for x in range(0, 1200, 200):  # panning: each read adjoins the last
            np.testing.assert_array_equal(
                slide.read_region((x, 700), 0, (300, 300)), reference[700:1000, x : x + 300]
            )
        assert len(cache) > kept
        hits = cache.hits
        slide.read_region((1000, 700), 0, (300, 300))  # the last read again: all from cache
        assert cache.hits > hits


def test_tiff_tifffile_cannot_serve_falls_back_to_openslide(tmp_path: Path) -> None:
    # 16-bit RGB tiles are no 8-bit RGB zarr view; OpenSlide reads them (through libtiff).
    import tifffile

    rgb16 = np.random.default_rng(0).integers(0, 65535, (300, 400, 3)).astype(np.uint16)
    path = tmp_path / "sixteen bit.tif"
    tifffile.imwrite(path, rgb16, photometric="rgb", tile=(128, 128))
    with open_slide(path) as slide:
        assert isinstance(slide, OpenSlideSlide)
        assert slide.format == "generic-tiff"
        pixels = slide.read_region((0, 0), 0, (400, 300))
        assert np.abs(pixels.astype(int) - (rgb16 >> 8)).max() <= 1


def test_pyramid_pages_without_reduced_flag(tmp_path: Path, he_image: np.ndarray) -> None:
    # Some writers mark no level as reduced-resolution: tifffile then sees three images,
    # OpenSlide one pyramid. The pages that shrink like level 0 are its levels.
    import tifffile

    path = tmp_path / "unflagged.tiff"
    with tifffile.TiffWriter(path) as tif:
        for factor in (1, 2, 4):
            level = he_image[::factor, ::factor]
            tif.write(level, photometric="rgb", tile=(128, 128), compression="zlib")
    with open_slide(path) as slide:
        assert isinstance(slide, TiffSlide)
        assert slide.downsamples == [1.0, 2.0, 4.0]
        np.testing.assert_array_equal(np.asarray(slide.levels[2]), he_image[::4, ::4])
        np.testing.assert_array_equal(
            slide.read_region((40, 80), 1, (50, 30)), he_image[80:140:2, 40:140:2]
        )
