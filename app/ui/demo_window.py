"""``slidescope demo``: the demo slide, opened, analysed with the bundled model, heatmaps shown.

Everything slow runs in the background with a progress bar: the window is up at once, the
demo slide is generated on first use (reused afterwards), added to a project in the output
folder (whose caches keep the analysis, so a second demo shows the heatmaps at once), shown,
and analysed with ``resources/demo_model.safetensors``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from slidescope.app.demo.demo_slide import ensure_demo_slide
from slidescope.app.project.project import PROJECT_FILE, Project

#: the demo model was trained on 10,240 x 8,192 slides at 0.25 µm/px of other seeds;
#: seed 7 is one it never saw (resources/demo_model.json, "unseen_seeds_for_demo_and_tests")
DEMO_WIDTH, DEMO_HEIGHT, DEMO_SEED = 10_240, 8_192, 7
DEMO_KINDS = ("attention", "hard")


def start_demo(
    window: Any,
    out_dir: str | Path,
    seed: int = DEMO_SEED,
    size: tuple[int, int] = (DEMO_WIDTH, DEMO_HEIGHT),
) -> Any:
    """Drive a :class:`~slidescope.app.ui.main_window.SlideScopeWindow` through the demo.

    Returns the worker generating (or finding) the demo slide.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "demo-project"
    project = Project.open(folder) if (folder / PROJECT_FILE).exists() else Project.create(folder)
    window.session.set_project(project)
    window.analysis_dock.show_kinds(list(DEMO_KINDS))

    # weak: these closures outlive the demo in Qt connections and must not keep the window
    ref = weakref.ref(window)

    def slide_ready(path: Path) -> None:
        win = ref()
        if win is None:
            return
        win.session.project.add_slide(path)
        win.session.project.save()
        win.session.catalog.make_thumbnails()  # its picture in the slide list
        win.session.listeners.append(analyse_when_shown)
        win.open_slides([path])

    def analyse_when_shown(shown: Any) -> None:
        win = ref()
        if shown is None or win is None:
            return
        win.session.listeners.remove(analyse_when_shown)
        entry = win.session.project.find(shown.path)
        state = entry.analyses.get(win.analysis.key, {}).get("state") if entry else None
        if state not in ("done", "running"):  # else the project's cache is being shown
            win.analysis.run_slide()

    return window.session.run_in_background(
        ensure_demo_slide(out / "slides", size[0], size[1], seed),
        "Demo slide (first time: about a minute)",
        on_done=slide_ready,
    )


def run_demo(
    out_dir: str | Path,
    seed: int = DEMO_SEED,
    event_loop: bool = True,
    screenshot: str | Path | None = None,
    timeout_s: float = 900.0,
) -> int:
    """Open the window and run the demo in it; returns when the window closes.

    With ``screenshot``, the window is saved as a PNG once the heatmaps are on screen and
    then closed (for machines without a person in front of them, e.g. under Xvfb); the
    return value is 1 when that does not happen within ``timeout_s``.
    """
    from slidescope.app.ui.app import open_window

    window = open_window()  # first: it sets napari's options before napari is imported
    start_demo(window, out_dir, seed)
    status = {"code": 0}
    if screenshot is not None:
        _close_when_shown(window, Path(screenshot), timeout_s, status)
    if event_loop:
        import napari

        napari.run()
    return status["code"]


def _close_when_shown(window: Any, png: Path, timeout_s: float, status: dict[str, int]) -> None:
    """Save ``png`` once the heatmaps are painted and idle, then quit; give up after a while."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    png.parent.mkdir(parents=True, exist_ok=True)
    # A UI-side timer, not core polling: the analysis reports through Qt signals, but "every
    # layer painted and no job left" is a state of the whole window, checked between frames.
    timer = QTimer(window.qt_window)
    deadline = QTimer(window.qt_window)

    def check() -> None:
        if window.analysis.analysis is None or window.session.busy or not window.analysis.layers:
            return
        timer.stop()
        deadline.stop()
        window.viewer.screenshot(str(png), canvas_only=False, flash=False)
        print(f"demo: heatmaps on screen; window saved to {png}")
        window.viewer.close()
        QApplication.quit()

    def give_up() -> None:
        timer.stop()
        status["code"] = 1
        print(f"demo: no heatmaps after {timeout_s:.0f} s; giving up")
        window.viewer.close()
        QApplication.quit()

    timer.timeout.connect(check)
    deadline.setSingleShot(True)
    deadline.timeout.connect(give_up)
    timer.start(250)
    deadline.start(int(timeout_s * 1000))
