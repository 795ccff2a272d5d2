"""Overlays placed in level-0 pixels land on exactly the slide pixels they name."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from slidescope.app.display.placement import (
    SlideSpace,
    grid_placement,
    grid_shape,
    level_placement,
    shapes_placement,
    slide_placement,
)
from test_main_window import look_at, open_and_wait
from ui_slides import SlideFiles, save_shot

SPACE = SlideSpace((0.5, 0.25))  # mpp x 0.5, y 0.25: unequal on purpose


def test_world_is_level0_continuous_coordinates_times_mpp():
    assert SPACE.to_world(10, 20) == (5.0, 5.0)
    assert SPACE.to_level0((5.0, 5.0)) == (10.0, 20.0)
    assert SPACE.pixel_at((5.1, 5.2)) == (10, 20)
    assert SPACE.pixel_at((4.99, 4.99)) == (9, 19)
    assert SPACE.unit == "micrometer"
    assert SlideSpace(None).unit == "pixel"
    assert SlideSpace(None).per_pixel == (1.0, 1.0)


def test_slide_pixel_centres_at_half_pixels():
    p = slide_placement(SPACE)
    assert p.scale == (0.25, 0.5)
    # napari puts data pixel k's centre at translate + k * scale: pixel 0 centre = 0.5 px
    assert p.translate == (0.125, 0.25)


def test_grid_cell_covers_its_patch():
    p = grid_placement(SPACE, origin=(100, 40), patch_size=16)
    assert p.scale == (16 * 0.25, 16 * 0.5)
    # cell [r, c] centre = origin + (c + 0.5, r + 0.5) * patch, in world units
    r, c = 2, 3
    centre_y = p.translate[0] + r * p.scale[0]
    centre_x = p.translate[1] + c * p.scale[1]
    assert SPACE.to_level0((centre_y, centre_x)) == (100 + 3.5 * 16, 40 + 2.5 * 16)
    rect = grid_placement(SPACE, origin=(0, 0), patch_size=(8, 4))
    assert rect.scale == (4 * 0.25, 8 * 0.5)
    assert level_placement(SPACE, 4).scale == (1.0, 2.0)


def test_shapes_in_level0_coordinates():
    p = shapes_placement(SPACE)
    assert p.scale == (0.25, 0.5)
    assert p.translate == (0.0, 0.0)
    assert p.kwargs["units"] == ("micrometer", "micrometer")


def test_grid_shape_from_feature_coords():
    coords = np.array([[512, 256], [768, 256], [512, 512], [1024, 768]])
    origin, shape, cells = grid_shape(coords, 256)
    assert origin == (512.0, 256.0)
    assert shape == (3, 3)
    assert cells.tolist() == [[0, 0], [0, 1], [1, 0], [2, 2]]
    assert grid_shape(np.zeros((0, 2)), 256)[1] == (0, 0)


@pytest.fixture
def make_window(window_factory, slide_files: SlideFiles):
    return functools.partial(window_factory, size=(1200, 900), open_slide=slide_files)


def test_overlays_cover_exactly_their_pixels_on_screen(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    window = make_window()
    path = slide_files.add(tmp_path / "s.tif", small_levels, mpp=(0.5, 0.5))
    open_and_wait(window, qtbot, path)
    space = window.session.current.data.space
    viewer = window.viewer
    # a rectangle over level-0 pixels x in [300, 357), y in [200, 241)
    x0, x1, y0, y1 = 300, 357, 200, 241
    viewer.add_shapes(
        [np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)],
        shape_type="rectangle",
        face_color="red",
        edge_width=0,
        opacity=1.0,
        name="rectangle",
        **shapes_placement(space).kwargs,
    )
    # a 3 x 4 heatmap of 16-px patches whose top-left patch starts at level-0 (420, 230)
    cells = np.arange(12, dtype=np.uint8).reshape(3, 4)
    heat = np.stack([cells * 20 + 10, 255 - cells * 10, np.full_like(cells, 7)], axis=-1)
    viewer.add_image(
        heat,
        rgb=True,
        name="heatmap",
        interpolation2d="nearest",
        **grid_placement(space, origin=(420, 230), patch_size=16).kwargs,
    )
    top_left = (280, 180)
    shot = look_at(window, qtbot, 0, top_left).astype(int)
    save_shot(shot.astype(np.uint8), "overlays-level0", tmp_path)

    def screen(x: int, y: int) -> np.ndarray:  # level-0 pixel -> screen colour
        return shot[y - top_left[1], x - top_left[0]]

    red = (shot[..., 0] > 200) & (shot[..., 1] < 40) & (shot[..., 2] < 40)
    rows, cols = np.nonzero(red)
    assert (rows.min() + top_left[1], rows.max() + top_left[1] + 1) == (y0, y1)
    assert (cols.min() + top_left[0], cols.max() + top_left[0] + 1) == (x0, x1)
    assert red.sum() == (x1 - x0) * (y1 - y0)
    for r in range(3):
        for c in range(4):
            want = heat[r, c]
            px, py = 420 + c * 16, 230 + r * 16
            for dx, dy in ((0, 0), (15, 15), (0, 15), (15, 0)):  # the patch's corner pixels
                np.testing.assert_array_equal(screen(px + dx, py + dy), want)
    # just outside the grid: the slide
    slide = window.session.current.slide
    np.testing.assert_array_equal(screen(419, 230), slide.read_region((419, 230), 0, (1, 1))[0, 0])
    np.testing.assert_array_equal(
        screen(420 + 64, 246), slide.read_region((484, 246), 0, (1, 1))[0, 0]
    )
