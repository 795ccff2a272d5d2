"""Heatmap display speed at 20,000 patches: in-place changes against a full rebuild.

1. A display change (opacity, colormap, normalisation, threshold) until the next drawn frame:
   :class:`~slidescope.app.ui.heatmap_view.HeatmapView` updating its layers in place, against
   the previous way (every layer recoloured to RGBA and added again), in the same run.
2. The hover read-out at the cursor: a patch-grid lookup plus the overlay label, against the
   previous scan over every patch.

Run: QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest
tests/benchmarks/test_heatmap_display.py -o addopts="" -m benchmark -s -p no:cacheprovider
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import slidescope.app.ui  # noqa: F401 - guards PySide6's refcounts before any window opens
from slidescope.app.analysis.heatmaps import DisplayChoices, colorize, display_grid, kind_scores
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.display.heatmap_layers import PatchIndex, hover_text, patch_at
from slidescope.app.display.placement import SlideSpace, grid_placement
from slidescope.app.slides.slide import SlideIdentity

pytestmark = pytest.mark.benchmark

ROWS, COLS, PATCH = 100, 200, 256  # 20,000 patches
KINDS = ["attention", "hard"]


def big_analysis() -> SlideAnalysis:
    rng = np.random.default_rng(0)
    r, c = (a.ravel() for a in np.mgrid[0:ROWS, 0:COLS])
    n = r.size
    coords = np.stack([c * PATCH, r * PATCH], axis=1).astype(np.int64)
    attention = rng.random(n).astype(np.float32) ** 4
    masked = np.zeros(n, bool)
    masked[np.argsort(-attention)[: n // 10]] = True
    p = rng.random(n).astype(np.float32)
    return SlideAnalysis(
        identity=SlideIdentity("bench", "f" * 16, COLS * PATCH, ROWS * PATCH, (0.5, 0.5)),
        coords=coords,
        patch_size_level0=PATCH,
        class_names=["normal", "tumour"],
        probabilities=np.array([0.3, 0.7], np.float32),
        attention=attention,
        instance_probs=np.stack([1 - p, p], axis=1),
        masked=masked,
        hard_attention=np.where(masked, 0, rng.random(n)).astype(np.float32),
        mask_ratio=0.1,
    )


def rebuild_like_before(viewer, analysis, space, display, layers: list) -> list:
    """The previous display path: every layer removed, recoloured to RGBA and added again."""
    for layer in layers:
        viewer.layers.remove(layer)
    made = []
    for kind in KINDS:
        for name, scores in kind_scores(analysis, kind).items():
            hide = analysis.masked if kind == "hard" else None
            grid = display_grid(analysis, scores, display, hide=hide)
            values = grid.values
            if display.threshold is not None:
                values = np.where(values >= display.threshold, values, np.nan)
            rgba = colorize(values, display.colormap)
            made.append(
                viewer.add_image(
                    rgba, name=name, rgb=True, opacity=display.opacity,
                    **grid_placement(space, grid.origin, grid.cell).kwargs,
                )
            )  # fmt: skip
    return made


CHANGES = {
    "opacity": lambda d, i: replace(d, opacity=0.3 + 0.05 * (i % 8)),
    "colormap": lambda d, i: replace(d, colormap=("turbo", "inferno", "viridis")[i % 3]),
    "normalisation": lambda d, i: replace(d, normalisation=("minmax", "rank")[i % 2]),
    "threshold": lambda d, i: replace(d, threshold=0.2 + 0.1 * (i % 5)),
}


def test_display_change_in_place_against_rebuild(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication
    from slidescope.app.ui.heatmap_view import HeatmapView
    from slidescope.app.ui.napari_access import canvas_widget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    canvas = canvas_widget(viewer)
    app = QApplication.instance()
    analysis, space = big_analysis(), SlideSpace((0.5, 0.5))
    display = DisplayChoices()

    def frame() -> None:
        app.processEvents()
        canvas.repaint()  # paints the GL canvas now: the next drawn frame

    view = HeatmapView(viewer)
    view.sync(analysis, space, KINDS, None, display)
    viewer.reset_view()
    frame()
    blank = []
    for _ in range(5):  # a frame with nothing changed: what every path pays to draw
        t = time.perf_counter()
        frame()
        blank.append(time.perf_counter() - t)
    draw = float(np.median(blank))
    old_layers: list = []
    figures = {}
    for what, change in CHANGES.items():
        in_place, rebuild = [], []
        current = display
        for i in range(1, 7):
            current = change(display, i)
            t = time.perf_counter()
            view.sync(analysis, space, KINDS, None, current)
            frame()
            in_place.append(time.perf_counter() - t)
        for layer in list(view.layers.values()):
            layer.visible = False  # the rebuilt layers alone are drawn while timing them
        for i in range(1, 4):
            current = change(display, i)
            t = time.perf_counter()
            old_layers = rebuild_like_before(viewer, analysis, space, current, old_layers)
            frame()
            rebuild.append(time.perf_counter() - t)
        for layer in old_layers:
            viewer.layers.remove(layer)
        old_layers = []
        for layer in view.layers.values():
            layer.visible = True
        figures[what] = (float(np.median(in_place)), float(np.median(rebuild)))
    for what, (fast, slow) in figures.items():
        print(
            f"{what:14s} in place {fast * 1e3:7.1f} ms   rebuild {slow * 1e3:7.1f} ms   "
            f"ratio {slow / fast:6.1f}x"
        )
    print(f"a frame with no change: {draw * 1e3:.1f} ms (software GL here)")
    # a ratio against the rebuild of the same run (absolute times here are software GL on a
    # shared CPU; the aim, < 50 ms to the next frame, is for a desktop GPU)
    for what, (fast, slow) in figures.items():
        assert slow / fast > 3, f"{what}: in place is not well ahead of a rebuild"


def test_hover_read_out_latency(make_napari_viewer):
    from slidescope.app.ui.napari_access import canvas_widget
    from slidescope.app.ui.widgets.canvas_overlays import HoverLabel

    viewer = make_napari_viewer(show=True)
    analysis = big_analysis()
    index = PatchIndex(analysis)
    label = HoverLabel(canvas_widget(viewer))
    rng = np.random.default_rng(1)
    points = rng.random((300, 2)) * [COLS * PATCH, ROWS * PATCH]
    lookup, scan = [], []
    for x, y in points:
        t = time.perf_counter()
        hit = index.at(x, y)
        label.show_at(hover_text(analysis, hit) if hit is not None else "", 100, 100)
        lookup.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert patch_at(analysis, x, y) == hit
        scan.append(time.perf_counter() - t)
    fast, slow = float(np.median(lookup)), float(np.median(scan))
    print(f"hover read-out {fast * 1e3:.3f} ms (grid lookup + label) vs scan {slow * 1e3:.3f} ms")
    assert fast < 0.010  # aim: < 10 ms
