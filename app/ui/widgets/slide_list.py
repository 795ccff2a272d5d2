"""The project's slides: thumbnail, name and analysis state; double-click to show one."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QIcon, QPixmap
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from slidescope.app.project.project import Project, SlideEntry

ICON_SIZE = 56


def analysis_summary(entry: SlideEntry) -> str:
    """One line of analysis states, e.g. ``"demo-abmil: done"`` or ``"not analysed"``."""
    if not entry.analyses:
        return "not analysed"
    return ", ".join(f"{key}: {info.get('state', '?')}" for key, info in entry.analyses.items())


class SlideList(QWidget):
    """The slides of the open project (or of this session when no project is open).

    Signals
    -------
    slide_activated(str)
        The absolute path of the slide the user double-clicked (or pressed Enter on).
    add_slides_requested, add_folder_requested
        The Add buttons were clicked (the window shows the file dialogs).
    """

    slide_activated = Signal(str)
    add_slides_requested = Signal()
    add_folder_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-slides")
        self.title = QLabel("No project: slides of this session")
        self.title.setWordWrap(True)
        self.list = QListWidget()
        self.list.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        # long slide names wrap in the narrow column instead of hiding behind a scroll bar
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.itemActivated.connect(self._activated)
        self.list.itemDoubleClicked.connect(self._activated)
        add = QPushButton("Add slides...")
        add.clicked.connect(self.add_slides_requested)
        add_folder = QPushButton("Add folder...")
        add_folder.clicked.connect(self.add_folder_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(add_folder)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._current: str | None = None
        self._items: dict[str, QListWidgetItem] = {}  # by slide path
        self._icons: dict[tuple[str, int], QIcon] = {}

    def show_project(self, project: Project | None, session: list[Path] | None = None) -> None:
        """List a project's slides, or the session's loose slides when there is no project."""
        self.list.clear()
        self._items = {}
        cached, self._icons = self._icons, {}  # only the listed slides' icons stay cached
        if project is not None:
            self.title.setText(f"Project {project.name} ({len(project)} slides)")
            for entry in project:
                path = project.slide_path(entry)
                thumb = project.thumbnail_path(entry.slide_id)
                self._add_item(entry.slide_id, path, analysis_summary(entry), thumb, cached)
        else:
            self.title.setText("No project: slides of this session")
            for path in session or []:
                self._add_item(path.name, path, "", None)
        self.mark_current(self._current)

    def show_entry(self, project: Project, entry: SlideEntry) -> None:
        """Show one project slide's analysis state anew (the rest of the list is unchanged)."""
        item = self._items.get(str(project.slide_path(entry)))
        if item is not None:
            item.setText(_item_text(entry.slide_id, analysis_summary(entry)))

    def mark_current(self, path: str | None) -> None:
        """Bold the slide that is shown."""
        self._current = path
        for i in range(self.list.count()):
            item = self.list.item(i)
            font = item.font()
            font.setBold(item.data(Qt.ItemDataRole.UserRole) == path)
            item.setFont(font)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def _add_item(
        self,
        name: str,
        path: Path,
        state: str,
        thumbnail: Path | None,
        cached: dict[tuple[str, int], QIcon] | None = None,
    ) -> None:
        item = QListWidgetItem(_item_text(name, state))
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        self._items[str(path)] = item
        item.setToolTip(str(path))
        icon = self._icon(thumbnail, cached or {}) if thumbnail is not None else None
        if icon is not None:
            item.setIcon(icon)
        self.list.addItem(item)

    def _icon(self, thumbnail: Path, cached: dict[tuple[str, int], QIcon]) -> QIcon | None:
        """The thumbnail's icon, decoded once while the file is unchanged (from ``cached``,
        the last listing's): the list is rebuilt when slides are added or a project opens,
        and decoding every thumbnail again took a second at 1,000 slides."""
        try:
            changed = thumbnail.stat().st_mtime_ns
        except OSError:
            return None
        key = (str(thumbnail), changed)
        icon = cached.get(key) or QIcon(QPixmap(str(thumbnail)))
        self._icons[key] = icon
        return icon

    def _activated(self, item: QListWidgetItem) -> None:
        self.slide_activated.emit(item.data(Qt.ItemDataRole.UserRole))


def _item_text(name: str, state: str) -> str:
    return f"{name}\n{state}" if state else name
