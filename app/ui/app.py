"""Start the desktop application: the window, what to open in it, and napari's event loop."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

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
    # napari slices layers in a worker thread when asked before it is imported, so a slow
    # tile never blocks the window (the tile cache makes slicing cheap either way)
    os.environ.setdefault("NAPARI_ASYNC", "1")
    import napari
    from slidescope.app.ui.singleton_guard import guard_singletons

    guard_singletons()
    from slidescope.app.ui.main_window import SlideScopeWindow

    window = SlideScopeWindow()
    projects = [p for p in paths if (Path(p) / PROJECT_FILE).exists()]
    slides = [p for p in paths if p not in projects]
    if projects:
        window.open_project(projects[0])
    if slides:
        window.open_slides(slides)
    if event_loop:
        napari.run()
    return 0
