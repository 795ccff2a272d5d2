"""Heatmap maths: grids in level-0 space, normalisation, smoothing, thresholds, contours."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.app.analysis.heatmaps import (
    DisplayChoices,
    colorize,
    contours,
    display_grid,
    grid_stride,
    kind_scores,
    normalise,
    patch_grid,
    smooth,
    threshold_mask,
)
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.slides.slide import SlideIdentity


def test_patch_grid_puts_each_score_in_its_patch_cell() -> None:
    coords = np.array([[512, 256], [768, 256], [512, 768]])
    grid = patch_grid(coords, np.array([1.0, 2.0, 3.0]), 256)
    assert grid.origin == (512, 256)
    assert grid.cell == 256
    assert grid.shape == (3, 2)
    assert grid.values[0, 0] == 1.0
    assert grid.values[0, 1] == 2.0
    assert grid.values[2, 0] == 3.0
    assert np.isnan(grid.values[1, 0])
    # any level-0 point inside a patch reads that patch's score
    assert grid.value_at(512 + 255.9, 256 + 0.1) == 1.0
    assert grid.value_at(768 + 10, 300) == 2.0
    assert np.isnan(grid.value_at(100, 100))


def test_stride_of_overlapping_grid_and_single_patch() -> None:
    coords = np.array([[0, 0], [128, 0], [256, 0], [0, 128]])
    assert grid_stride(coords, 256) == 128
    assert grid_stride(np.array([[40, 40]]), 256) == 256
    grid = patch_grid(coords, np.arange(4.0), 256)
    assert grid.shape == (2, 3)


def test_empty_bag_gives_empty_grid() -> None:
    grid = patch_grid(np.zeros((0, 2)), np.zeros(0), 256)
    assert grid.shape == (0, 0)
    assert contours(grid, 0.5) == []
    assert smooth(grid).shape == (0, 0)


def test_mismatched_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="2 patch corners but 3 scores"):
        patch_grid(np.zeros((2, 2)), np.zeros(3), 256)


def test_normalisations_keep_missing_cells_missing() -> None:
    values = np.array([[2.0, np.nan], [4.0, 10.0]])
    raw = normalise(values, "raw")
    np.testing.assert_array_equal(raw, values.astype(np.float32))
    minmax = normalise(values, "minmax")
    np.testing.assert_allclose(minmax[[0, 1, 1], [0, 0, 1]], [0.0, 0.25, 1.0])
    assert np.isnan(minmax[0, 1])
    rank = normalise(values, "rank")
    np.testing.assert_allclose(rank[[0, 1, 1], [0, 0, 1]], [0.0, 0.5, 1.0])
    assert np.isnan(rank[0, 1])


def test_rank_shares_ties_and_constant_minmax_is_mid_grey() -> None:
    np.testing.assert_allclose(normalise(np.array([1.0, 1.0, 5.0]), "rank"), [0.25, 0.25, 1.0])
    np.testing.assert_allclose(normalise(np.array([3.0, 3.0]), "minmax"), [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(np.zeros(2), "zscore")


def test_smoothing_spreads_a_peak_but_keeps_background_and_flat_fields() -> None:
    values = np.zeros((9, 9), np.float32)
    values[4, 4] = 1.0
    values[0, :] = np.nan
    grid = patch_grid(np.zeros((0, 2)), np.zeros(0), 10).with_values(values)
    smoothed = smooth(grid, 1.0).values
    assert smoothed[4, 4] < 1.0
    assert smoothed[4, 5] > 0.0
    assert np.isnan(smoothed[0]).all()
    flat = grid.with_values(np.where(np.isnan(values), np.nan, 0.7))
    np.testing.assert_allclose(smooth(flat, 2.0).values[1:], 0.7, rtol=1e-5)


def test_threshold_mask_ignores_missing() -> None:
    mask = threshold_mask(np.array([0.2, np.nan, 0.9, 0.5]), 0.5)
    np.testing.assert_array_equal(mask, [False, False, True, True])


def test_contours_trace_cell_edges_in_level0_space() -> None:
    # a 3x3 block of high scores at cells (2..4, 1..3) of a grid anchored at (1000, 2000)
    rows, cols = np.mgrid[0:6, 0:6]
    coords = np.stack([1000 + cols.ravel() * 100, 2000 + rows.ravel() * 100], axis=1)
    high = (rows.ravel() >= 2) & (rows.ravel() <= 4) & (cols.ravel() >= 1) & (cols.ravel() <= 3)
    grid = patch_grid(coords, high.astype(float), 100)
    polygons = contours(grid, 0.5)
    assert len(polygons) == 1
    (ring,) = polygons[0]
    np.testing.assert_array_equal(ring[0], ring[-1])
    # the outline hugs the block: x from 1100 to 1400, y from 2200 to 2500 (corners cut)
    assert ring[:, 0].min() == pytest.approx(1100, abs=1)
    assert ring[:, 0].max() == pytest.approx(1400, abs=1)
    assert ring[:, 1].min() == pytest.approx(2200, abs=1)
    assert ring[:, 1].max() == pytest.approx(2500, abs=1)


def test_contours_keep_holes_with_their_region() -> None:
    values = np.ones((5, 5), np.float32)
    values[2, 2] = 0.0
    grid = patch_grid(np.zeros((0, 2)), np.zeros(0), 10).with_values(values)
    polygons = contours(grid, 0.5)
    assert len(polygons) == 1
    exterior, hole = polygons[0]
    assert exterior[:, 0].max() - exterior[:, 0].min() == pytest.approx(50)
    assert hole[:, 0].min() == pytest.approx(20)
    assert hole[:, 0].max() == pytest.approx(30)


def test_colorize_makes_missing_transparent() -> None:
    rgba = colorize(np.array([[0.0, np.nan, 1.0]]), "viridis", opacity=0.5)
    assert rgba.dtype == np.uint8
    assert rgba[0, 1, 3] == 0
    assert rgba[0, 0, 3] == 128
    assert not np.array_equal(rgba[0, 0, :3], rgba[0, 2, :3])


def test_kind_scores_name_every_layer() -> None:
    analysis = SlideAnalysis(
        identity=SlideIdentity("s", "f", 100, 100, None),
        coords=np.array([[0, 0], [10, 0]]),
        patch_size_level0=10,
        class_names=["normal", "tumour"],
        probabilities=np.array([0.3, 0.7]),
        attention=np.array([0.4, 0.6]),
        instance_probs=np.array([[0.9, 0.1], [0.2, 0.8]]),
        masked=np.array([False, True]),
        hard_attention=np.array([1.0, 0.0]),
        mask_ratio=0.5,
    )
    assert list(kind_scores(analysis, "prob")) == ["prob_normal", "prob_tumour"]
    np.testing.assert_array_equal(kind_scores(analysis, "masked")["masked"], [0.0, 1.0])
    assert analysis.predicted_class == "tumour"
    with pytest.raises(ValueError, match="unknown heatmap kind"):
        kind_scores(analysis, "gradcam")
    with pytest.raises(ValueError, match="unknown normalisation"):
        DisplayChoices(normalisation="log")


def test_hard_heatmap_hides_the_masked_set() -> None:
    analysis = SlideAnalysis(
        identity=SlideIdentity("s", "f", 40, 10, None),
        coords=np.array([[0, 0], [10, 0], [20, 0], [30, 0]]),
        patch_size_level0=10,
        class_names=["a", "b"],
        probabilities=np.array([0.5, 0.5]),
        attention=np.array([0.1, 0.6, 0.2, 0.1]),
        instance_probs=np.full((4, 2), 0.5),
        masked=np.array([False, True, False, False]),
        hard_attention=np.array([0.25, 0.0, 0.5, 0.25]),
        mask_ratio=0.25,
    )
    display = DisplayChoices(normalisation="minmax")
    grid = display_grid(analysis, analysis.hard_attention, display, hide=analysis.masked)
    np.testing.assert_allclose(grid.values[0], [0.0, np.nan, 1.0, 0.0])
