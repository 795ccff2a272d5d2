"""The one place SlideScope reaches into napari's private Qt objects, and why each is needed.

napari 0.9 has no public handle on its Qt main window, its QtViewer (canvas widget and the
layer list / layer controls docks) or its welcome screen. SlideScope needs them to dock its own
widgets beside the canvas, to lay the window out, to draw overlays on the canvas and to replace
the welcome screen. Everything private goes through these functions, so a napari upgrade is
checked here and nowhere else. Where a public API exists it is used instead (``add_dock_widget``,
``viewer.window.file_menu`` / ``window_menu``, Qt's own ``findChild``).
"""

from __future__ import annotations

from typing import Any


def _real(viewer: Any) -> Any:
    # a plugin widget gets a proxy that warns on private access: the private access is this
    # module's whole purpose, so it goes to the viewer behind the proxy
    return getattr(viewer, "__wrapped__", viewer)


def qt_window(viewer: Any) -> Any:
    """The QMainWindow of a napari viewer (private: ``Window._qt_window``)."""
    return _real(viewer).window._qt_window


def qt_viewer(viewer: Any) -> Any:
    """The QtViewer (canvas, layer docks) of a napari viewer (private: ``Window._qt_viewer``)."""
    return _real(viewer).window._qt_viewer


def canvas_widget(viewer: Any) -> Any:
    """The Qt widget the canvas draws in (overlays are its children)."""
    return qt_viewer(viewer).canvas.native


def hide_welcome_screen(viewer: Any) -> None:
    """Never show napari's welcome screen (SlideScope shows its own start page).

    ``QtViewer.show_welcome_screen`` is a public property of a private object.
    """
    qt_viewer(viewer).show_welcome_screen = False


def welcome_widget(viewer: Any) -> Any | None:
    """napari's welcome widget, which also takes drops while it is shown."""
    return getattr(qt_viewer(viewer), "_welcome_widget", None)


def layer_docks(viewer: Any) -> list[Any]:
    """napari's layer list and layer controls docks (QDockWidgets; public properties of the
    private QtViewer)."""
    qv = qt_viewer(viewer)
    return [qv.dockLayerList, qv.dockLayerControls]
