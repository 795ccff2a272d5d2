"""``slidescope``, ``slidescope gui`` and ``slidescope open``: the window with what was asked."""

from __future__ import annotations

import sys

import napari
import pytest
from slidescope.app.cli import main
from slidescope.app.project.project import Project
from slidescope.app.ui import main_window


@pytest.fixture
def windows(make_napari_viewer, monkeypatch):
    """Make ``run_window`` build its window on the test's viewer and skip the event loop."""
    made: list = []
    window_class = main_window.SlideScopeWindow

    def make_window():
        window = window_class(make_napari_viewer(show=True))
        made.append(window)
        return window

    monkeypatch.setattr(main_window, "SlideScopeWindow", make_window)
    monkeypatch.setattr(napari, "run", lambda *a, **k: None)
    monkeypatch.setenv("NAPARI_ASYNC", "0")
    yield made
    made.clear()


def test_open_command_shows_the_slide(windows, aperio_svs, qtbot):
    assert main(["open", str(aperio_svs)]) == 0
    window = windows[0]
    qtbot.waitUntil(lambda: window.session.current is not None, timeout=20_000)
    assert window.viewer.layers[0].name == "cmu_small_region"
    assert window.viewer.title == "SlideScope - cmu_small_region"
    qtbot.waitUntil(lambda: not window.session.busy, timeout=20_000)
    window.session.shutdown()


def test_no_command_opens_the_window(windows, monkeypatch):
    import gc

    monkeypatch.setattr("sys.argv", ["slidescope"])  # main([]) falls back to sys.argv
    assert main([]) == 0
    assert windows[0].viewer.title == "SlideScope"
    assert windows[0].session.current is None
    # what start-up made is out of the collector's sight while the window lives (napari
    # collects on every layer removal), and handed back when it closes
    assert gc.get_freeze_count() > 100_000
    windows[0].viewer.close()
    assert gc.get_freeze_count() == 0


def test_gui_command_opens_a_project(windows, aperio_svs, tmp_path, qtbot):
    project = Project.create(tmp_path / "proj")
    project.add_slide(aperio_svs)
    project.save()
    assert main(["gui", str(tmp_path / "proj")]) == 0
    window = windows[0]
    assert window.session.project is not None
    qtbot.waitUntil(lambda: not window.session.busy, timeout=20_000)  # thumbnails made
    assert project.thumbnail_path("cmu_small_region").exists()
    assert window.panels.slides.list.count() == 1
    assert not window.panels.slides.list.item(0).icon().isNull()
    window.session.shutdown()


def test_open_a_missing_file_is_an_error_without_a_window(windows, tmp_path, capsys):
    assert main(["open", str(tmp_path / "nope.svs")]) == 2
    assert "nope.svs" in capsys.readouterr().err
    assert windows == []


def test_first_slide_imports_run_on_a_thread(tmp_path, monkeypatch):
    import sys
    import threading

    from slidescope.app.ui.app import import_in_background

    (tmp_path / "slidescope_probe_module.py").write_text(
        "import threading\nWHERE = threading.current_thread().name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    go = threading.Event()
    thread = import_in_background(("slidescope_probe_module", "no_such_module_here"), after=go)
    thread.join(timeout=0.2)
    assert thread.is_alive()  # waiting for the window to paint
    assert "slidescope_probe_module" not in sys.modules
    go.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert sys.modules["slidescope_probe_module"].WHERE == "slidescope-imports"
    assert "no_such_module_here" not in sys.modules  # missing: left to the caller, no error


def test_the_window_starts_without_torch(tmp_path):
    """torch and the models (~1 s of start-up) are imported on a thread once the window is up
    (app.FIRST_SLIDE_IMPORTS), or by the first analysis; making the window needs none of it."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from qtpy.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from slidescope.app.ui.main_window import SlideScopeWindow\n"
        "window = SlideScopeWindow()\n"
        "print(sorted(m for m in ('torch', 'h5py') if m in sys.modules))\n"
        "window.viewer.close()\n"
    )
    env = {**os.environ, "SLIDESCOPE_CONFIG": str(tmp_path / "config")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_window_slices_on_the_main_thread(tmp_path):
    """napari's experimental slicing thread stays off, even over a napari preference: its
    Qt signal deadlocked with the main thread closing a slide (1 launch in 8 hung)."""
    import os
    import subprocess
    import sys

    code = (
        "from qtpy.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from slidescope.app.ui.app import open_window\n"
        "window = open_window()\n"
        "print(window.viewer._layer_slicer._force_sync)\n"
        "window.viewer.close()\n"
    )
    env = {**os.environ, "SLIDESCOPE_CONFIG": str(tmp_path / "config")}
    env.pop("NAPARI_ASYNC", None)
    # a napari preference left on, as a researcher may have it
    napari_config = tmp_path / "napari.yaml"
    napari_config.write_text("experimental:\n  async_: true\n")
    env["NAPARI_CONFIG"] = str(napari_config)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_background_imports_are_frozen_only_while_no_slide_is_open(qtbot):
    import gc
    import threading
    from types import SimpleNamespace

    from qtpy.QtWidgets import QWidget
    from slidescope.app.ui.app import freeze_when_imported

    class Session:  # the window's slide session, as far as this reads it
        def __init__(self, current: object) -> None:
            self.current, self.busy = current, False

    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    before = gc.get_freeze_count()
    try:
        for current, frozen in ((object(), False), (None, True)):
            gc.unfreeze()
            owner = QWidget()
            qtbot.addWidget(owner)
            session = Session(current)
            window = SimpleNamespace(qt_window=owner, session=session)
            freeze_when_imported(window, finished, poll_ms=10)
            qtbot.waitUntil(lambda w=window: not w.freeze_imports_timer.isActive())
            assert (gc.get_freeze_count() > 0) == frozen
    finally:
        gc.unfreeze()
        if before:
            gc.freeze()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_the_qt_binding_keeps_none_s_references(qtbot) -> None:
    """PySide6 6.12.0 lost a reference to None on every call under Python 3.11, until CPython
    aborted (``pyproject.toml`` leaves it out); a binding that does so again fails here."""
    from qtpy.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(1000):
        label.setText("a")
    assert sys.getrefcount(None) - before > -100
