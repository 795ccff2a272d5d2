"""Heatmap layer data: alpha ramp, threshold in the colormap, grid lookup, hotspots."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.app.analysis.heatmaps import DisplayChoices
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.display.heatmap_layers import (
    FLOOR,
    HARD_COLORMAP,
    PatchIndex,
    heatmap_layers,
    hotspots,
    layer_colors,
    patch_at,
    ramp_colors,
)
from slidescope.app.display.placement import SlideSpace
from slidescope.app.slides.slide import SlideIdentity


def analysis(rows: int = 6, cols: int = 9, patch: int = 100, gap: bool = False) -> SlideAnalysis:
    r, c = (a.ravel() for a in np.mgrid[0:rows, 0:cols])
    keep = (r + c) % 5 != 0  # holes without a patch
    r, c = r[keep], c[keep]
    stride = patch + (20 if gap else 0)
    coords = np.stack([c * stride + 50, r * stride + 30], axis=1).astype(np.int64)
    n = coords.shape[0]
    attention = np.linspace(0, 1, n, dtype=np.float32)
    p = np.linspace(1, 0, n, dtype=np.float32)
    return SlideAnalysis(
        identity=SlideIdentity("s", "f", cols * stride + 100, rows * stride + 100, (0.5, 0.5)),
        coords=coords,
        patch_size_level0=patch,
        class_names=["a", "b"],
        probabilities=np.array([0.4, 0.6], np.float32),
        attention=attention,
        instance_probs=np.stack([p, 1 - p], axis=1),
        masked=attention > 0.9,
        hard_attention=np.where(attention > 0.9, 0, 1 - attention).astype(np.float32),
        mask_ratio=0.1,
    )


def test_low_values_are_transparent_and_alpha_ramps_up():
    colors = ramp_colors("turbo", FLOOR)
    cut = int(FLOOR * 255)
    assert (colors[:cut, 3] == 0).all()
    assert colors[-1, 3] == 1.0
    assert (np.diff(colors[:, 3]) >= 0).all()  # a ramp, never a veil


def test_threshold_moves_the_transparent_part_of_the_colormap():
    low = layer_colors("attention", DisplayChoices(), (0.0, 1.0))
    high = layer_colors("attention", DisplayChoices(threshold=0.8), (0.0, 1.0))
    assert low[1] != high[1]
    assert (high[0][: int(0.79 * 255), 3] == 0).all()
    assert high[0][-1, 3] == 1.0


def test_hard_instance_has_its_own_colormap_and_empty_cells_are_below_the_range():
    a = analysis()
    display = DisplayChoices(colormap="turbo")
    (att,) = heatmap_layers(a, "attention", display, SlideSpace((0.5, 0.5)))
    (hard,) = heatmap_layers(a, "hard", display, SlideSpace((0.5, 0.5)))
    assert HARD_COLORMAP in hard.colormap_name
    assert "turbo" in att.colormap_name
    empty = ~np.isfinite(att.grid.values)
    assert empty.any()
    assert (att.data[empty] < att.contrast_limits[0]).all()
    np.testing.assert_array_equal(att.data[~empty], att.grid.values[~empty])


@pytest.mark.parametrize("gap", [False, True])
def test_patch_index_agrees_with_the_scan(gap):
    a = analysis(gap=gap)
    index = PatchIndex(a)
    rng = np.random.default_rng(0)
    for x, y in rng.random((400, 2)) * [a.identity.width, a.identity.height]:
        assert index.at(x, y) == patch_at(a, x, y)


def test_hotspots_are_separate_places_best_first():
    a = analysis()
    spots = hotspots(a, a.attention, count=5)
    assert spots[0] == int(np.argmax(a.attention))
    for i, s in enumerate(spots):
        for t in spots[:i]:
            assert np.abs(a.coords[s] - a.coords[t]).max() > 2 * a.patch_size_level0
