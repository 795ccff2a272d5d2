"""What the desktop window remembers between runs: its geometry, its docks, its checkpoint.

The values live in :mod:`slidescope.app.settings` (the platform's user config folder); this
module only moves them in and out of Qt. Only a window that made its own viewer (the desktop
app) remembers: a SlideScope window dressed onto someone's napari viewer leaves it as it is.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QByteArray, QEvent, QObject
from slidescope.app.settings import Settings, save_settings


class RememberedLayout(QObject):
    """Restore the window's layout from ``settings`` now; save it when the window closes."""

    def __init__(self, window: Any, settings: Settings) -> None:
        super().__init__(window.qt_window)
        self._window = window
        self.settings = settings
        self.restore()
        window.qt_window.installEventFilter(self)

    def restore(self) -> None:
        """Put the window and its docks where they were (nothing when nothing was saved)."""
        qt_window = self._window.qt_window
        if self.settings.window_geometry:
            qt_window.restoreGeometry(QByteArray.fromBase64(self.settings.window_geometry.encode()))
        if self.settings.window_state:
            qt_window.restoreState(QByteArray.fromBase64(self.settings.window_state.encode()))

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
