"""SlideScope's menu entries and keys: File > Open..., Navigate (magnification, hotspots).

Ctrl+O and Ctrl+Shift+O are SlideScope's (Open Slide, Open Project). napari binds the same
keys to its own Open File(s) / Open Folder; two actions on one key make Qt refuse both
("Ambiguous shortcut"), so napari's actions lose those keys here (they stay in the menu).
Magnification presets are Alt+1..Alt+5 (1x, 5x, 10x, 20x, 40x) and Alt+0 fits the slide, so
the plain digits stay free for the Annotations dock's classes; F3 / Shift+F3 step through the
hotspots of the heatmap shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtGui import QAction, QKeySequence
from qtpy.QtWidgets import QMenu
from slidescope.app.ui.navigation import PRESETS
from slidescope.app.ui.weak_slots import weak_slot

OPEN_SLIDE_KEY = "Ctrl+O"
OPEN_PROJECT_KEY = "Ctrl+Shift+O"


def add_file_actions(window: Any) -> dict[str, QAction]:
    """SlideScope's entries at the top of File, and Recent Files."""
    menu: QMenu = window.viewer.window.file_menu
    first = menu.actions()[0] if menu.actions() else None
    actions: dict[str, QAction] = {}
    for key, text, slot, shortcut in (
        ("open_slide", "Open Slide...", window.ask_open_slides, OPEN_SLIDE_KEY),
        ("open_project", "Open Project...", window.ask_open_project, OPEN_PROJECT_KEY),
        ("new_project", "New Project...", window.ask_new_project, None),
        ("add_folder", "Add Folder of Slides...", window.ask_add_folder, None),
        ("import_annotations", "Import Annotations...", window.annotation.ask_import, None),
        ("export_annotations", "Export Annotations...", window.annotation.ask_export, None),
        ("slide_label", "Slide Label...", window.annotation.ask_label, None),
    ):
        action = QAction(text, window.qt_window)
        if shortcut:
            action.setShortcut(shortcut)
        action.triggered.connect(weak_slot(slot))
        menu.insertAction(first, action)
        actions[key] = action
    window.recent_menu = QMenu("Recent Files", window.qt_window)
    window.recent_menu.aboutToShow.connect(weak_slot(window._fill_recent))
    menu.insertMenu(first, window.recent_menu)
    menu.insertSeparator(first)
    free_keys(window.qt_window, set(actions.values()), (OPEN_SLIDE_KEY, OPEN_PROJECT_KEY))
    return actions


def free_keys(qt_window: Any, ours: set[QAction], keys: tuple[str, ...]) -> list[str]:
    """Take ``keys`` off every other action of the window; returns the actions' texts."""
    wanted = {QKeySequence(k).toString() for k in keys}
    freed = []
    for action in qt_window.findChildren(QAction):
        if action in ours:
            continue
        kept = [s for s in action.shortcuts() if s.toString() not in wanted]
        if len(kept) != len(action.shortcuts()):
            action.setShortcuts(kept)
            freed.append(action.text())
    return freed


def add_navigate_menu(window: Any) -> dict[str, QAction]:
    """The Navigate menu: magnification presets, fit, next/previous hotspot."""
    menu = QMenu("&Navigate", window.qt_window)
    actions: dict[str, QAction] = {}

    def add(key: str, text: str, shortcut: str, slot: Callable[..., Any], *args: Any) -> None:
        action = QAction(text, window.qt_window)
        action.setShortcut(shortcut)
        action.triggered.connect(weak_slot(slot, *args))
        menu.addAction(action)
        window.qt_window.addAction(action)  # the key works while the menu is closed
        actions[key] = action

    for n, power in enumerate(PRESETS, start=1):
        add(
            f"magnification_{power}",
            f"Magnification {power}×",
            f"Alt+{n}",
            window.set_magnification,
            power,
        )
    add("fit", "Whole slide", "Alt+0", window.fit_slide)
    menu.addSeparator()
    add("next_hotspot", "Next hotspot", "F3", window.step_hotspot, 1)
    add("previous_hotspot", "Previous hotspot", "Shift+F3", window.step_hotspot, -1)
    bar = window.qt_window.menuBar()
    window_menu = window.viewer.window.window_menu
    bar.insertMenu(window_menu.menuAction(), menu)
    window.navigate_menu = menu
    return actions
