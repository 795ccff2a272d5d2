"""SlideScope's docks in one list: the window's layout, its Window menu and the plugin read it.

A dock is a :class:`DockSpec`: a key, a title, the side it sits on, how it is made from the
window, whether it starts visible, and (for a dock the napari plugin offers too) the name of
its plugin widget in ``plugins/napari.yaml``. Another area adds its dock with one line::

    DOCKS.append(DockSpec("annotations", "Annotations", "right", AnnotationsDock.for_window))

Layout for the review task: the slides and the overview on the left, the analysis on the
right, the canvas in the middle with at least two thirds of the width at 1600 x 1000.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import Qt

#: the widths of the side columns at a 1600 px wide screen (the canvas keeps the rest)
LEFT_WIDTH = 230
RIGHT_WIDTH = 270
#: how far a user may widen a side column past its width
MAX_WIDEN = 2.0
#: the heights of the first dock of each column (the others share the rest)
FIRST_HEIGHTS = {"left": 0.55, "right": 0.22}


@dataclass(frozen=True)
class DockSpec:
    """One dock of the window.

    Attributes
    ----------
    key : str
        Its name in ``window.docks``.
    title : str
        Its title bar and Window menu entry.
    area : {"left", "right"}
    widget : callable
        ``window -> QWidget``.
    visible : bool
        Shown when the window opens (else reopened from the Window menu).
    tabify : str or None
        The key of a dock to share tabs with (it stays the raised one).
    plugin_widget : str or None
        The ``display_name`` of the same dock among the plugin's widgets, if it is one.
    scroll : bool
        Put the widget in a vertical scroll area: a tall dock (annotation tools, training)
        must not claim the column's height from the dock stacked above it.
    """

    key: str
    title: str
    area: str
    widget: Callable[[Any], Any]
    visible: bool = True
    tabify: str | None = None
    plugin_widget: str | None = None
    scroll: bool = False


DOCKS: list[DockSpec] = [
    DockSpec("slides", "Slides", "left", lambda w: w.panels.slides, plugin_widget="Slides"),
    DockSpec("overview", "Overview", "left", lambda w: w.panels.minimap),
    DockSpec(
        "info", "Slide info", "left", lambda w: w.panels.info, tabify="overview", scroll=True
    ),
    DockSpec("prediction", "Prediction", "right", lambda w: w.prediction, scroll=True),
    DockSpec("analysis", "Analysis", "right", lambda w: w.analysis_dock, plugin_widget="Analysis"),
    DockSpec("patches", "Patches", "right", lambda w: w.gallery, tabify="analysis"),
    DockSpec(
        "annotations",
        "Annotations",
        "right",
        lambda w: w.annotations_dock,
        tabify="analysis",
        plugin_widget="Annotations",
        scroll=True,
    ),
    DockSpec("train", "Train", "right", lambda w: w.train_dock, tabify="analysis", scroll=True),
]


def add_docks(
    window: Any, specs: list[DockSpec] | None = None, tabify: bool = True
) -> dict[str, Any]:
    """Dock every spec's widget in ``window`` (a SlideScopeWindow); returns key -> QDockWidget.

    ``tabify=False``: leave every dock on its own, for a saved layout to place them
    (:func:`tabify_docks` then tabs what it did not place).
    """
    docks: dict[str, Any] = {}
    for spec in specs if specs is not None else DOCKS:
        widget = spec.widget(window)
        if spec.scroll:
            widget = _scrolled(widget)
        dock = window.viewer.window.add_dock_widget(
            widget,
            name=spec.title,
            area=spec.area,
            add_vertical_stretch=False,
            menu=window.viewer.window.window_menu,  # every dock can be reopened from there
        )
        docks[spec.key] = dock
        dock.setVisible(spec.visible)
    if tabify:
        tabify_docks(window, docks, specs)
    return docks


def tabify_docks(
    window: Any,
    docks: dict[str, Any],
    specs: list[DockSpec] | None = None,
    placed: Collection[str] = (),
) -> None:
    """Put each dock in its spec's tab group, except those a restored layout ``placed``.

    ``placed``: the object names of the docks that ``QMainWindow.restoreState`` put where
    the user had them. Tabs are made after a restore, never before: Qt 6.12 keeps the tab
    bar of a group made before ``restoreState`` on screen beside the restored group's own
    (two bars, the stale one over the dock's last rows, on every launch after the first).
    """
    for spec in specs if specs is not None else DOCKS:
        dock = docks.get(spec.key)
        if dock is None or not spec.tabify or spec.tabify not in docks:
            continue
        if dock.objectName() in placed:
            continue
        window.qt_window.tabifyDockWidget(docks[spec.tabify], dock)
        docks[spec.tabify].raise_()
        dock.setVisible(spec.visible)


def size_columns(
    window: Any, docks: dict[str, Any], specs: list[DockSpec] | None = None, resize: bool = True
) -> None:
    """Give the side columns their widths (narrower on a small screen): the canvas the rest.

    ``resize=False``: only the columns' limits (a restored layout keeps the sizes the user
    gave it).
    """
    width = window.qt_window.width()
    scale = min(1.0, width / 1600)
    width_scale = width / 1600  # wider screens give the columns their share too
    left = [d for s in (specs or DOCKS) if s.area == "left" and (d := docks.get(s.key))]
    right = [d for s in (specs or DOCKS) if s.area == "right" and (d := docks.get(s.key))]
    # the user may widen a column by its edge, up to twice its width (a longer slide list,
    # a larger gallery); no label can widen it by itself past that into the canvas' share
    for column, column_width in ((left, LEFT_WIDTH), (right, RIGHT_WIDTH)):
        for dock in column:
            dock.setMaximumWidth(max(int(column_width * width_scale * MAX_WIDEN), 160))
    if not resize:
        return
    targets = left[:1] + right[:1]
    sizes = [int(LEFT_WIDTH * scale)] * len(left[:1]) + [int(RIGHT_WIDTH * scale)] * len(right[:1])
    if targets:
        window.qt_window.resizeDocks(targets, sizes, Qt.Orientation.Horizontal)
    height = window.qt_window.height()
    for column, side in ((left, "left"), (right, "right")):
        shown = [d for d in column if not d.isHidden() and not _tabbed_behind(window, d)]
        if len(shown) > 1:
            first = int(height * FIRST_HEIGHTS[side])
            window.qt_window.resizeDocks(
                shown[:2], [first, max(height - first, 100)], Qt.Orientation.Vertical
            )


def _scrolled(widget: Any) -> Any:
    from qtpy.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    return area


def _tabbed_behind(window: Any, dock: Any) -> bool:
    """Whether ``dock`` shares tabs with a dock listed before it (only one of them counts)."""
    return (
        any(
            other is not dock and other.isVisible()
            for other in window.qt_window.tabifiedDockWidgets(dock)
        )
        and not dock.isVisible()
    )
