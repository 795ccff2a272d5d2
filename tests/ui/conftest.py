"""Fixtures for the window tests (helpers in ui_slides.py)."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pytest
from ui_slides import SlideFiles, synthetic_levels


@pytest.fixture(scope="session")
def small_levels() -> list[np.ndarray]:
    """A 2048 x 1536 slide with 4 levels (downsamples 1, 2, 4, 8)."""
    return synthetic_levels(2048, 1536, 4)


@pytest.fixture
def slide_files() -> SlideFiles:
    return SlideFiles()


@pytest.fixture(autouse=True)
def _private_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """User folders are temporary, never the user's home. Settings and user data (the
    annotations of slides outside a project) are each test's own: the test slides share
    their pixels, so one test's drawings would show on the next one's slide. The cache
    (demo slides, analysis results) is shared by the session."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(tmp_path / "user-config"))
    monkeypatch.setenv("SLIDESCOPE_CACHE", str(base / "cache"))
    monkeypatch.setenv("SLIDESCOPE_DATA", str(tmp_path / "user-data"))


@pytest.fixture(scope="session")
def demo_slide(tmp_path_factory: pytest.TempPathFactory):
    """A small demo slide (4096 x 4096, 0.25 µm/px, 4 levels), made once per session."""
    from slidescope.app.demo.demo_slide import ensure_demo_slide
    from slidescope.app.jobs import run_job

    folder = tmp_path_factory.getbasetemp() / "cache" / "samples"
    return run_job(ensure_demo_slide(folder, 4096, 4096, 0))


@pytest.fixture
def window_factory(make_napari_viewer, qtbot):
    """Make SlideScope windows: ``make(size=(w, h), **SlideScopeWindow kwargs)``.

    A factory, so that only the test holds the window: napari's leak check fails when a
    fixture value (kept until every fixture is torn down) refers to the viewer. Windows
    still alive at the end are let finish their background work and shut down.
    """
    from slidescope.app.ui.main_window import SlideScopeWindow

    made: list[weakref.ref[SlideScopeWindow]] = []

    def make(size: tuple[int, int] = (1500, 950), **kwargs: Any) -> SlideScopeWindow:
        viewer = make_napari_viewer(show=True)
        viewer.window._qt_window.resize(*size)
        win = SlideScopeWindow(viewer, **kwargs)
        made.append(weakref.ref(win))
        return win

    yield make
    for ref in made:
        win = ref()
        if win is not None:
            qtbot.waitUntil(lambda w=win: not w.session.busy, timeout=60_000)
            win.session.shutdown()
        del win
