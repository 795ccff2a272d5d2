"""Start the desktop application: the window, what to open in it, and napari's event loop."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import threading
import weakref
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
    # napari's experimental slicing on a worker thread stays off (napari's default; set
    # before napari is imported, over a preference left on): its thread's Qt signal
    # deadlocked with the main thread deleting widgets under PySide (closing a slide hung
    # the window in 1 of 8 launches). Slicing reads through the tile cache, whose threads
    # decode a view's tiles in parallel, so the main thread waits ~0.1 s at most on a cold
    # view.
    os.environ.setdefault("NAPARI_ASYNC", "0")
    from slidescope.app.ui.singleton_guard import guard_singletons

    guard_singletons()
    from qtpy.QtCore import QTimer
    from slidescope.app.ui.main_window import SlideScopeWindow

    window = SlideScopeWindow()  # napari shows it
    freeze_startup_objects(window)
    # the imports wait until the window has painted: on a thread they still take much of
    # the interpreter's time, and started at once they raced its first paints (0.3-0.8 s
    # under Xvfb) with torch often imported before the window was on screen
    painted = threading.Event()
    QTimer.singleShot(IMPORTS_AFTER_SHOW_MS, painted.set)
    freeze_when_imported(window, import_in_background(after=painted))
    return window


#: how long after the window shows the first slide's imports start
IMPORTS_AFTER_SHOW_MS = 1000


#: what the window imports the first time a slide opens, and nothing before it: napari's
#: layer features (pandas) for the slide's annotation layer; then what the first analysis
#: needs (torch and the models, ~1.5 s, kept out of start-up: the window shows ~1 s sooner)
FIRST_SLIDE_IMPORTS = ("pandas", "slidescope.app.analysis.inference")


def import_in_background(
    modules: Sequence[str] = FIRST_SLIDE_IMPORTS, after: threading.Event | None = None
) -> threading.Thread:
    """Import ``modules`` on a thread while the start page waits for the user.

    pandas alone is 0.4 s of the first slide's 1.2-1.7 s to the screen (10,240 × 8,192
    demo). A slide opened (or an analysis started) before it is done waits for the same
    import, no longer. With ``after``, the thread waits for that event first.
    """

    def run() -> None:
        if after is not None:
            after.wait()
        for name in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="slidescope-imports", daemon=True)
    thread.start()
    return thread


def freeze_startup_objects(window: Any) -> None:
    """Take what start-up made (napari, Qt: ~260,000 objects) out of the cyclic
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


def freeze_when_imported(window: Any, imports: threading.Thread, poll_ms: int = 200) -> None:
    """Once ``imports`` (:func:`import_in_background`) is done, freeze what it made too
    (torch and the models: ~170,000 objects), as :func:`freeze_startup_objects` froze the
    rest; a slide switch's collection then walks none of them.

    Only while no slide is open or opening: a slide's own objects must stay collectable
    (frozen, a closed slide's reference cycles would live until the window closes). A
    slide opened first leaves them unfrozen: a collection takes ~0.07 s longer.
    """
    from qtpy.QtCore import QTimer

    timer = QTimer(window.qt_window)
    timer.setInterval(poll_ms)
    # weak: the timer must not keep a closed window alive (napari's leak check)
    session_ref = weakref.ref(window.session)

    def check() -> None:
        if imports.is_alive():
            return
        timer.stop()
        session = session_ref()
        if session is not None and session.current is None and not session.busy:
            gc.collect()
            gc.freeze()

    timer.timeout.connect(check)
    timer.start()
    window.freeze_imports_timer = timer
