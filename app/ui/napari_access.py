"""The one place SlideScope reaches into napari's private Qt objects, and why each is needed.

napari 0.9 has no public handle on its Qt main window, its QtViewer (canvas widget and the
layer list / layer controls docks) or its welcome screen. SlideScope needs them to dock its own
widgets beside the canvas, to lay the window out, to draw overlays on the canvas and to replace
the welcome screen. Everything private goes through these functions, so a napari upgrade is
checked here and nowhere else. Where a public API exists it is used instead (``add_dock_widget``,
``viewer.window.file_menu`` / ``window_menu``, Qt's own ``findChild``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# id() of each LayerList inside a batch of layer changes (layers_changed_together), and how
# deep; by id, as a LayerList's hash follows its contents
_batches: dict[int, int] = {}


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


@contextlib.contextmanager
def layers_changed_together(viewer: Any) -> Iterator[None]:
    """Add and remove layers inside the block with one update of napari's scene graph.

    Outside a batch, napari's canvas runs a full ``gc.collect()`` after every layer removal
    (a guard against a Windows OpenGL driver bug): with napari's ~250,000 objects that is
    0.3 s a layer, and switching slides removes three (slide, annotations, heatmap). In a
    batch (``LayerList.batched_update``, public but undocumented) it runs once, at the end
    -- even for a batch that changed nothing, so enter one only with something to remove.
    Nested blocks batch with the outermost: napari's own batch does not nest.
    """
    layers = _real(viewer).layers
    batched = getattr(layers, "batched_update", None)
    key = id(layers)
    depth = _batches.get(key, 0)
    _batches[key] = depth + 1
    try:
        if batched is None or depth:
            yield
        else:
            with batched():
                yield
    finally:
        if depth:
            _batches[key] = depth
        else:
            del _batches[key]
