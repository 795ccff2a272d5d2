"""What the desktop window remembers between runs: its geometry, its docks, its checkpoint.

The values live in :mod:`slidescope.app.settings` (the platform's user config folder); this
module only moves them in and out of Qt. Only a window that made its own viewer (the desktop
app) remembers: a SlideScope window dressed onto someone's napari viewer leaves it as it is.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QByteArray, QEvent, QObject
from qtpy.QtWidgets import QDockWidget
from slidescope.app.settings import Settings, save_settings


class RememberedLayout(QObject):
    """Restore the window's layout from ``settings`` now; save it when the window closes.

    ``placed``: the object names of the docks the restored layout put in place.
    """

    def __init__(self, window: Any, settings: Settings) -> None:
        super().__init__(window.qt_window)
        self._window = window
        self.settings = settings
        self.placed = self.restore()
        window.qt_window.installEventFilter(self)

    def restore(self) -> set[str]:
        """Put the window and its docks where they were (nothing when nothing was saved).

        Returns the object names of the docks the saved layout placed: those it names
        (Qt writes each as a length and UTF-16BE text); a dock newer than the saved layout
        is not among them. Empty when nothing was saved or Qt refused the state.
        """
        qt_window = self._window.qt_window
        if self.settings.window_geometry:
            qt_window.restoreGeometry(
                QByteArray.fromBase64(self.settings.window_geometry.encode())
            )
        if not self.settings.window_state:
            return set()
        state = QByteArray.fromBase64(self.settings.window_state.encode())
        if not qt_window.restoreState(state):
            return set()
        raw = bytes(state.data())
        names = {dock.objectName() for dock in qt_window.findChildren(QDockWidget)}
        return {name for name in names if name and name.encode("utf-16-be") in raw}

    def save(self) -> None:
        """Write the window's geometry, dock layout and the analysis checkpoint."""
        qt_window = self._window.qt_window
        self.settings.window_geometry = bytes(qt_window.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(qt_window.saveState().toBase64()).decode()
        checkpoint = self._window.analysis.checkpoint
        self.settings.last_checkpoint = str(checkpoint) if checkpoint is not None else ""
        save_settings(self.settings)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close:
            self.save()
        return False
