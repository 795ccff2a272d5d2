"""The streaming pyramid TIFF writer: tiles in any order, directories at the end."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import openslide
import pytest
import tifffile
from slidescope.app.demo.tiff_writer import PyramidTiffWriter, TiffLevel


def gradient(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.float32)
    image += rng.normal(0, 2, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(path: Path, images: list[np.ndarray], tile: int, order: str) -> None:
    levels = [
        TiffLevel(img.shape[1], img.shape[0], tile, 0.5 * 2**i, reduced=i > 0)
        for i, img in enumerate(images)
    ]
    jobs = []
    for index, (level, image) in enumerate(zip(levels, images)):
        for ty in range(level.tiles_down):
            for tx in range(level.tiles_across):
                block = np.full((tile, tile, 3), 255, np.uint8)
                part = image[ty * tile : (ty + 1) * tile, tx * tile : (tx + 1) * tile]
                block[: part.shape[0], : part.shape[1]] = part
                jobs.append((index, tx, ty, imagecodecs.jpeg_encode(block, level=95)))
    if order == "reversed":
        jobs.reverse()
    with path.open("wb") as fh:
        writer = PyramidTiffWriter(fh, levels, description="test pyramid")
        for index, tx, ty, data in jobs:
            writer.write_tile(index, tx, ty, bytes(data))
        writer.finish()


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_tiles_written_in_any_order_read_back(tmp_path: Path, order: str) -> None:
    images = [gradient(700, 900, 0), gradient(350, 450, 1), gradient(175, 225, 2)]
    path = tmp_path / "p.tiff"
    write(path, images, tile=256, order=order)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        assert len(tif.pages) == 3
        assert tif.pages[0].description == "test pyramid"
        for page, image in zip(tif.pages, images):
            assert page.shape == image.shape
            assert np.abs(page.asarray().astype(int) - image).mean() < 3
    with openslide.OpenSlide(path) as slide:
        assert slide.level_dimensions == ((900, 700), (450, 350), (225, 175))
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        level1 = np.asarray(slide.read_region((0, 0), 1, (450, 350)).convert("RGB"))
    assert np.abs(level1.astype(int) - images[1]).mean() < 3


def test_finishing_with_missing_tiles_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "x.tiff").open("wb") as fh:
        writer = PyramidTiffWriter(fh, [TiffLevel(512, 512, 256, 0.25, reduced=False)])
        writer.write_tile(0, 0, 0, b"\xff\xd8\xff\xd9")
        with pytest.raises(ValueError, match="missing"):
            writer.finish()
