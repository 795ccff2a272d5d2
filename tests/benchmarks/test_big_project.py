"""A project of 1,000 slides in the window: showing another slide, against a one-slide project.

A lab's cohort as a project: 1,000 small slides (copies of one 1,024 x 1,024 demo slide, with
their thumbnails and identities made by the window's own background job). In a SlideScope
window (1600 x 1000, under Xvfb) one slide of the project is shown, then another, and the
clock runs from the request to the slide on screen with the window idle; the same in a
project of one slide (the same two files, the second opened outside it). Median of five
switches each. Aim: switching at 1,000 slides costs at most twice what it costs at one (the
lists, the project lookups and the Train dock grow with the cohort; the slide does not).

Run: QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" python -m pytest
tests/benchmarks/test_big_project.py -o addopts="" -m benchmark -s -p no:cacheprovider
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import pytest
import slidescope.app.ui  # noqa: F401 - guards PySide6's refcounts before any window opens
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.jobs import run_job
from slidescope.app.project.project import Project

pytestmark = pytest.mark.benchmark

SLIDES = 1_000
SWITCHES = 5


def _project(folder: Path, source: Path, n: int) -> Project:
    project = Project.create(folder)
    (folder / "slides").mkdir()
    for i in range(n):
        copy = folder / "slides" / f"TCGA-{i:04d}.tiff"
        shutil.copy(source, copy)
        project.add_slide(copy)
    project.save()
    return project


def _show(window, qtbot, path: Path) -> float:
    start = time.perf_counter()
    window.open_slides([path])
    qtbot.waitUntil(
        lambda: (
            window.session.current is not None
            and window.session.current.path == path.resolve()
            and not window.session.busy
        ),
        timeout=60_000,
    )
    return time.perf_counter() - start


def _median_switch(window, qtbot, project: Project, other: Path) -> float:
    window.open_project(project.folder)
    # the project's thumbnails and identities, made once by the window's background job
    qtbot.waitUntil(lambda: not window.session.busy, timeout=600_000)
    first = project.slide_path(next(iter(project)))
    _show(window, qtbot, first)
    times = []
    for _ in range(SWITCHES):
        times.append(_show(window, qtbot, other))
        times.append(_show(window, qtbot, first))
    return statistics.median(times)


def test_switching_slides_in_a_project_of_1000(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from slidescope.app.ui.app import freeze_startup_objects
    from slidescope.app.ui.main_window import SlideScopeWindow

    for name in ("CONFIG", "CACHE", "DATA"):  # never the user's own folders or cache
        monkeypatch.setenv(f"SLIDESCOPE_{name}", str(tmp_path / name.lower()))
    source = run_job(generate_demo_slide(tmp_path / "source.tiff", 1024, 1024, seed=3)).path
    start = time.perf_counter()
    big = _project(tmp_path / "big", source, SLIDES)
    made = time.perf_counter() - start
    small = _project(tmp_path / "small", source, 1)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    window = SlideScopeWindow(viewer)
    freeze_startup_objects(window)  # as the application's window does (app.open_window)
    try:
        one = _median_switch(window, qtbot, small, big.slide_path(list(big)[500]))
        many = _median_switch(window, qtbot, big, big.slide_path(list(big)[500]))
    finally:
        window.session.shutdown()
    print(
        f"\n[big project] {SLIDES} slides added in {made:.1f} s; showing another slide: "
        f"{many:.2f} s at {SLIDES} slides, {one:.2f} s at one: ratio {many / one:.2f}"
    )
    assert many / one <= 2.0
