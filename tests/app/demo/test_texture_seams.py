"""Demo slides have no tile seams: across a tile border pixels change as within a tile."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.app.demo.layout import make_layout
from slidescope.app.demo.render import TileRenderer
from slidescope.app.demo.texture import make_textures, stain_lut

TILE = 512


def border_ratio(image: np.ndarray, period: int) -> float:
    """How a tile border compares with the lines of neighbours within the tiles.

    For each axis, the mean absolute difference of neighbouring pixels along every line;
    the largest over the border lines (every ``period`` pixels) divided by the 99th
    percentile over the other lines. Below 1: no border stands out from the texture's own
    variation; a seam puts its line far above.
    """
    image = image.astype(np.float32)
    ratios = []
    for axis in (0, 1):
        d = np.abs(np.diff(image, axis=axis))
        profile = d.mean(axis=tuple(i for i in range(d.ndim) if i != axis))
        border = (np.arange(profile.size) % period) == period - 1
        ratios.append(profile[border].max() / np.quantile(profile[~border], 0.99))
    return float(max(ratios))


@pytest.fixture(scope="module")
def renderer() -> TileRenderer:
    rng = np.random.default_rng(11)
    layout = make_layout(6144, 6144, rng)
    return TileRenderer(layout, make_textures(rng, TILE), stain_lut(rng), TILE)


def test_texture_maps_wrap_without_a_seam(renderer) -> None:
    textures = renderer.textures
    for name in ("stroma", "normal_nuclei", "lesion_nuclei", "grain"):
        texture = getattr(textures, name)
        wrapped = np.tile(texture, (2, 2))  # the period boundary sits mid-image
        assert border_ratio(wrapped, texture.shape[0]) < 1.1, name


def test_rendered_tiles_join_without_a_seam(renderer) -> None:
    layout = renderer.layout
    rows, cols = np.nonzero(layout.tissue > 0)
    y = int(np.median(rows)) * layout.cell // TILE * TILE - TILE
    x = int(np.median(cols)) * layout.cell // TILE * TILE - TILE
    image = np.concatenate(
        [
            np.concatenate([renderer.render(x + j * TILE, y + i * TILE) for j in range(3)], 1)
            for i in range(3)
        ],
        0,
    )
    assert border_ratio(image, TILE) < 1.1
    # the measure sees a seam: the same region with every tile's texture shifted by 7 px
    seamed = image.copy()
    for i in range(3):
        for j in range(3):
            block = seamed[i * TILE : (i + 1) * TILE, j * TILE : (j + 1) * TILE]
            block[:] = np.roll(block, 7 * (i + j + 1), axis=(0, 1))
    assert border_ratio(seamed, TILE) > 1.5


def test_stroma_direction_turns_smoothly(renderer) -> None:
    """No straight-edged patchwork: the local fibre orientation changes gradually.

    The structure tensor's orientation, in 64-px blocks, differs between neighbouring
    blocks by a small angle almost everywhere (an earlier stroma, which switched sharply
    between three directions, had many right-angle jumps).
    """
    from scipy import ndimage

    stroma = renderer.textures.stroma.astype(np.float64)
    gy, gx = np.gradient(ndimage.gaussian_filter(stroma, 2.0))
    block = 64

    def pooled(a: np.ndarray) -> np.ndarray:
        n = a.shape[0] // block
        return a[: n * block, : n * block].reshape(n, block, n, block).mean(axis=(1, 3))

    angle = 0.5 * np.arctan2(2 * pooled(gx * gy), pooled(gx * gx) - pooled(gy * gy))
    jumps = np.concatenate(
        [np.abs(np.diff(angle, axis=0)).ravel(), np.abs(np.diff(angle, axis=1)).ravel()]
    )
    jumps = np.minimum(jumps, np.pi - jumps)  # orientation is modulo 180 degrees
    assert np.mean(jumps > np.pi / 4) < 0.08
