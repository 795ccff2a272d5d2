"""The patch grid's geometry and the parallel patch reader."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from slidescope.app.analysis.patch_reader import PatchReader
from slidescope.app.analysis.patches import make_patch_grid, plan_patch_geometry
from slidescope.app.analysis.tissue import TissueMask
from slidescope.app.errors import MissingMppError
from tissue_slides import ArraySlide, he_like_image, write_pyramid_tiff


def _flat_slide(width: int, height: int, mpp: float | None, levels: int = 3) -> ArraySlide:
    pixel = np.array([[[200, 120, 160]]], dtype=np.uint8)
    arrays = [np.broadcast_to(pixel, (height // 2**i, width // 2**i, 3)) for i in range(levels)]
    return ArraySlide(arrays, mpp=mpp)


@pytest.mark.parametrize(
    ("slide_mpp", "target_mpp", "patch", "size0", "level"),
    [
        (0.25, 0.5, 256, 512, 1),  # 40x slide, 20x patches: read from level 1 as is
        (0.5, 0.5, 256, 256, 0),
        (0.25, 0.5, 224, 448, 1),
        (0.25, 1.0, 256, 1024, 2),
        (0.25, 0.6, 256, 614, 1),  # between levels: the finer level, resized
        (0.5, 0.25, 256, 128, 0),  # finer than the slide: level 0, upsampled
    ],
)
def test_geometry(slide_mpp, target_mpp, patch, size0, level) -> None:
    slide = _flat_slide(4096, 4096, slide_mpp)
    plan = plan_patch_geometry(slide, target_mpp, patch)
    assert plan["patch_size_level0"] == size0
    assert plan["read_level"] == level
    assert plan["read_size"] == round(size0 / 2**level)


def test_grid_overlap_and_bounds() -> None:
    slide = _flat_slide(2048, 1024, 0.5)
    grid = make_patch_grid(slide, None, 0.5, 256, overlap_px=64, min_tissue=0.0)
    assert grid.stride_level0 == 192
    xs, ys = np.unique(grid.coords[:, 0]), np.unique(grid.coords[:, 1])
    assert xs[0] == 0
    assert np.all(np.diff(xs) == 192)
    assert xs[-1] + 256 <= 2048
    assert xs[-1] + 192 + 256 > 2048
    assert len(grid) == len(xs) * len(ys)
    assert grid.coords.dtype == np.int64
    with pytest.raises(ValueError, match="overlap"):
        make_patch_grid(slide, None, 0.5, 256, overlap_px=256)


def test_min_tissue_keeps_patches_with_enough_tissue() -> None:
    slide = _flat_slide(1024, 1024, 0.5)
    mask = np.zeros((64, 64), dtype=bool)  # 16 level-0 px per mask px
    mask[:, :24] = True  # x < 384
    tissue = TissueMask(mask, 16.0, (1024, 1024))
    grid = make_patch_grid(slide, tissue, 0.5, 256, min_tissue=0.6)
    assert sorted(set(grid.coords[:, 0].tolist())) == [0]  # 256..512 is half tissue
    grid = make_patch_grid(slide, tissue, 0.5, 256, min_tissue=0.5)
    assert sorted(set(grid.coords[:, 0].tolist())) == [0, 256]
    assert grid.tissue_share.min() == pytest.approx(0.5)


def test_slide_without_mpp() -> None:
    with pytest.raises(MissingMppError, match="--slide-mpp"):
        make_patch_grid(_flat_slide(512, 512, None), None)


def test_reader_matches_read_region(tmp_path) -> None:
    image = he_like_image(1536, 1024, blobs=[(700, 500, 600)], seed=3)
    slide = ArraySlide.pyramid(image, mpp=0.25, levels=3)
    grid = make_patch_grid(slide, None, 0.6, 100, overlap_px=10, min_tissue=0.0)
    assert grid.read_level == 1
    assert grid.read_size == 120
    with PatchReader(slide, grid, batch_size=7, workers=2) as reader:
        batches = list(reader.batches(grid.coords))
    coords = np.concatenate([c for c, _ in batches])
    patches = np.concatenate([p for _, p in batches])
    assert np.array_equal(coords, grid.coords)
    assert patches.shape == (len(grid), 100, 100, 3)
    for i in (0, len(grid) // 2, len(grid) - 1):
        x, y = grid.coords[i]
        region = slide.read_region((int(x), int(y)), 1, (120, 120))
        expected = np.asarray(Image.fromarray(region).resize((100, 100), Image.BILINEAR))
        assert np.array_equal(patches[i], expected)


def test_reader_on_a_tiff_slide_in_threads(tmp_path) -> None:
    from slidescope.app.slides import open_slide

    image = he_like_image(1024, 768, blobs=[(500, 400, 350)], seed=1)
    path = write_pyramid_tiff(tmp_path / "s.tiff", image, mpp=0.5)
    with open_slide(path) as slide:
        grid = make_patch_grid(slide, None, 0.5, 128, min_tissue=0.0)
        sequential = PatchReader(slide, grid, batch_size=5, workers=0)
        expected = np.concatenate([p for _, p in sequential.batches(grid.coords)])
        with PatchReader(slide, grid, batch_size=5, workers=3, prefetch=2) as reader:
            got = np.concatenate([p for _, p in reader.batches(grid.coords)])
        assert np.array_equal(got, expected)
        x, y = grid.coords[7]
        assert np.array_equal(got[7], slide.read_region((int(x), int(y)), 0, (128, 128)))


def test_reader_stops_when_closed_early() -> None:
    slide = _flat_slide(2048, 2048, 0.5)
    grid = make_patch_grid(slide, None, 0.5, 64, min_tissue=0.0)
    reader = PatchReader(slide, grid, batch_size=4, workers=2, prefetch=2)
    reads: list[int] = []
    read_batch = reader.read_batch

    def counted(chunk):
        reads.append(len(chunk))
        return read_batch(chunk)

    reader.read_batch = counted
    batches = reader.batches(grid.coords)
    next(batches)
    batches.close()
    reader.close()
    # the queued reads were cancelled: a few batches were read, not the whole grid
    assert len(reads) <= 1 + 2 + 2 < len(grid) // 4
    assert not [t for t in threading.enumerate() if t.name.startswith("patch-reader")]
