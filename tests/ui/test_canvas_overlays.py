"""The heatmaps' colour keys on the canvas: one per painted heatmap, stacked in the
bottom-right corner above the scale bar, as small as their titles allow."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QWidget
from slidescope.app.display.heatmap_layers import ramp_colors
from slidescope.app.ui.widgets.canvas_overlays import MARGIN, CanvasOverlays, LegendEntry

SCORE = LegendEntry(
    "Attention · min-max", ramp_colors("turbo"), [(0, "0"), (0.5, "0.5"), (1, "1")]
)
SET = LegendEntry(
    "Masked salient set", ramp_colors("masked"), [(1.0, "patches the teacher masks")]
)


def canvas(qtbot) -> tuple[QWidget, CanvasOverlays]:
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    return widget, CanvasOverlays(widget)


def bottom_right(widget: QWidget, bar: QWidget) -> tuple[int, int]:
    return (
        widget.width() - bar.geometry().right() - 1,
        widget.height() - bar.geometry().bottom() - 1,
    )


def test_one_key_per_heatmap_stacked_in_the_corner(qtbot) -> None:
    widget, overlays = canvas(qtbot)
    bar = overlays.colorbar
    assert not bar.isVisible()
    bar.show_legends([SCORE])
    one = bar.height()
    assert bar.isVisible()
    assert bar.titles == ["Attention · min-max"]
    assert bottom_right(widget, bar) == (MARGIN, 48)  # clear of napari's scale bar
    bar.show_legends([SCORE, SET, SCORE])
    # a set's key (a swatch) is shorter than a score's (a bar and its values)
    assert one < bar.height() < 3 * one
    assert bottom_right(widget, bar) == (MARGIN, 48)  # it grew upwards
    widget.resize(1200, 800)
    qtbot.waitUntil(lambda: bottom_right(widget, bar) == (MARGIN, 48))
    image = bar.grab().toImage()
    assert not image.isNull()
    bar.clear()
    assert not bar.isVisible()
    assert bar.titles == []


def test_a_long_title_widens_the_key_up_to_a_limit(qtbot) -> None:
    _widget, overlays = canvas(qtbot)
    bar = overlays.colorbar
    bar.show_legends([SCORE])
    narrow = bar.width()
    bar.show_legends([LegendEntry("Hard-instance attention · min-max", SCORE.colors, SCORE.stops)])
    assert bar.width() > narrow
    bar.show_legends([LegendEntry("p(" + "x" * 200 + ")", SCORE.colors, SCORE.stops)])
    assert bar.width() == bar.MAX_WIDTH


def test_the_key_paints_its_colours(qtbot) -> None:
    _widget, overlays = canvas(qtbot)
    bar = overlays.colorbar
    bar.show_legends([SCORE])
    pixels = bar.grab().toImage()
    y = bar.PADDING + 19 + 5  # the middle of the first key's bar

    def rgb(x: int) -> np.ndarray:
        colour = pixels.pixelColor(x, y)
        return np.array([colour.red(), colour.green(), colour.blue()])

    # its top end (right) is turbo's last colour, opaque; its low end is transparent over grey
    top = np.round(np.asarray(SCORE.colors[-1, :3]) * 255)
    assert np.abs(rgb(bar.width() - 12) - top).max() <= 8
    assert np.abs(rgb(12) - 128).max() <= 8
