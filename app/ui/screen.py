"""The window on its screen: never larger than the screen's free area, placed inside it."""

from __future__ import annotations

from typing import Any

from qtpy.QtGui import QGuiApplication


def fit_to_screen(qt_window: Any, fill: bool = False) -> tuple[int, int]:
    """Fit ``qt_window`` into the available geometry of the screen it opens on.

    Parameters
    ----------
    qt_window : QMainWindow
    fill : bool
        Take the whole free area (a new window); else only shrink what does not fit.

    Returns
    -------
    tuple of int
        The window's (width, height).
    """
    screen = qt_window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return qt_window.width(), qt_window.height()
    free = screen.availableGeometry()
    if fill:
        width, height = free.width(), free.height()
    else:
        width, height = (
            min(qt_window.width(), free.width()),
            min(qt_window.height(), free.height()),
        )
    # the frame (title bar) takes its share of the free area too
    frame = qt_window.frameGeometry().height() - qt_window.geometry().height()
    height = max(height - max(frame, 0), 200)
    qt_window.resize(width, height)
    qt_window.move(free.left(), free.top())
    return width, height
