"""The desktop window remembers its layout and checkpoint between runs (settings file)."""

from __future__ import annotations

import gc
import json

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTabBar
from slidescope.app.settings import load_settings, settings_path
from slidescope.app.ui import docks as docks_module
from slidescope.app.ui.main_window import SlideScopeWindow

#: the window's tab groups, each shown by one tab bar
TAB_GROUPS = [("Analysis", "Patches", "Annotations", "Train"), ("Overview", "Slide info")]


def tab_bars(window: SlideScopeWindow) -> list[tuple[str, ...]]:
    """The tabs of every tab bar on screen, sorted."""
    bars = window.qt_window.findChildren(QTabBar)
    return sorted(
        tuple(bar.tabText(i) for i in range(bar.count())) for bar in bars if bar.isVisible()
    )


@pytest.fixture(autouse=True)
def _windows_gone(qtbot):
    """These tests make their own viewers (as the app does): gone before the next test,
    whose napari fixture counts the viewers left alive."""
    yield
    qtbot.wait(50)  # the viewers' deleteLater
    gc.collect()


def test_a_made_window_saves_and_restores_its_layout(qtbot, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(tmp_path / "config"))
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"not read until an analysis runs")
    window = SlideScopeWindow(show=True, checkpoint=checkpoint)
    window.qt_window.resize(1200, 800)
    qtbot.waitUntil(lambda: window.qt_window.width() == 1200)
    # the user widens the slide column by its edge (up to twice its width)
    slides = window.docks["slides"]
    qtbot.wait(50)  # the window's layout pass once shown
    default = slides.width()
    window.qt_window.resizeDocks([slides], [default + 100], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: slides.width() == default + 100)
    window.viewer.close()
    settings, warning = load_settings()
    assert warning is None
    assert settings.window_geometry
    assert settings.window_state
    assert settings.last_checkpoint == str(checkpoint)

    again = SlideScopeWindow(show=True)
    try:
        assert again.analysis.checkpoint == checkpoint
        qtbot.waitUntil(lambda: again.qt_window.width() == 1200)
        qtbot.wait(50)  # the window's own layout pass, once shown, keeps the user's widths
        assert again.docks["slides"].width() == default + 100
        # one tab bar per group: Qt keeps a second, stale one when tabs are made before
        # the restore, drawn over the docks' last rows
        assert tab_bars(again) == TAB_GROUPS
    finally:
        again.viewer.close()


def test_a_dock_newer_than_the_saved_layout_joins_its_tabs(qtbot, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(tmp_path / "config"))
    # a layout saved by a version without the Train dock
    older = [spec for spec in docks_module.DOCKS if spec.key != "train"]
    with monkeypatch.context() as patch:
        patch.setattr(docks_module, "DOCKS", older)
        window = SlideScopeWindow(show=True)
        assert "train" not in window.docks
        window.viewer.close()
    again = SlideScopeWindow(show=True)
    try:
        assert "Train" not in again.remembered.placed
        assert {"Analysis", "Patches"} <= again.remembered.placed
        train = again.docks["train"]
        assert train in again.qt_window.tabifiedDockWidgets(again.docks["analysis"])
        assert tab_bars(again) == TAB_GROUPS
    finally:
        again.viewer.close()


def test_a_damaged_settings_file_is_set_aside_not_fatal(qtbot, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(tmp_path / "config"))
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text("{damaged")
    window = SlideScopeWindow(show=False)
    try:
        assert settings_path().with_name("settings.json.damaged").exists()
    finally:
        window.viewer.close()
    # closing wrote a fresh, readable file
    assert json.loads(settings_path().read_text())["window_geometry"] is not None
