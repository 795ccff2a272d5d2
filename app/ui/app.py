"""Start the desktop application: the window, what to open in it, and napari's event loop."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slidescope.app.project.project import PROJECT_FILE


def run_window(paths: Sequence[str] = (), *, event_loop: bool = True) -> int:
    """Open the SlideScope window with ``paths`` (slides, or a project folder) and run it.

    Parameters
    ----------
    paths : sequence of str
        Slide files and/or project folders.
    event_loop : bool
        Run napari's event loop until the window closes (False in tests).
    """
    window = open_window()
    projects = [p for p in paths if (Path(p) / PROJECT_FILE).exists()]
    slides = [p for p in paths if p not in projects]
    if projects:
        window.open_project(projects[0])
    if slides:
        window.open_slides(slides)
    if event_loop:
        import napari

        napari.run()
    return 0


def open_window() -> Any:
    """A SlideScope window as the application opens it (tests make theirs themselves)."""
    # napari slices layers in a worker thread when asked before it is imported, so a slow
    # tile never blocks the window (the tile cache makes slicing cheap either way)
    os.environ.setdefault("NAPARI_ASYNC", "1")
    from slidescope.app.ui.singleton_guard import guard_singletons

    guard_singletons()
    from slidescope.app.ui.main_window import SlideScopeWindow

    window = SlideScopeWindow()
    freeze_startup_objects(window)
    import_in_background()
    return window


#: what the window imports the first time a slide opens, and nothing before it: napari's
#: layer features (pandas) for the slide's annotation layer
FIRST_SLIDE_IMPORTS = ("pandas",)


def import_in_background(modules: Sequence[str] = FIRST_SLIDE_IMPORTS) -> threading.Thread:
    """Import ``modules`` on a thread while the start page waits for the user.

    pandas alone is 0.4 s of the first slide's 1.2-1.7 s to the screen (10,240 × 8,192
    demo). A slide opened before it is done waits for the same import, no longer.
    """

    def run() -> None:
        for name in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="slidescope-imports", daemon=True)
    thread.start()
    return thread


def freeze_startup_objects(window: Any) -> None:
    """Take what start-up made (napari, Qt, torch: ~470,000 objects) out of the cyclic
    garbage collector's sight (``gc.freeze``) while ``window`` lives.

    Every full collection walks all tracked objects, and napari runs one each time a slide
    or heatmap layer leaves the canvas: frozen, a slide switch takes 0.8 s instead of 1.0 s
    (10,240 × 8,192 demo). Garbage among them is collected first; when the window closes,
    they are handed back, so that a closed window can be collected.
    """
    from qtpy.QtCore import QEvent, QObject

    class UnfreezeOnClose(QObject):
        def eventFilter(self, watched: Any, event: Any) -> bool:  # Qt names it
            if event.type() == QEvent.Type.Close:
                gc.unfreeze()
            return False

    gc.collect()
    gc.freeze()
    window.unfreeze_on_close = UnfreezeOnClose(window.qt_window)
    window.qt_window.installEventFilter(window.unfreeze_on_close)
