"""SlideScope's start page over the empty canvas: open a slide or a project, recent, demo."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


class StartPage(QWidget):
    """Shown while no slide is; keeps itself centred on the canvas.

    Signals
    -------
    open_slide, open_project, demo
        The buttons.
    recent_chosen(str)
        A recent slide or project was double-clicked.
    """

    open_slide = Signal()
    open_project = Signal()
    demo = Signal()
    recent_chosen = Signal(str)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-start")
        self.setStyleSheet(
            "#slidescope-start { background: rgba(38, 41, 48, 235); border-radius: 10px; }"
            " QLabel { color: #e6e6e6; }"
        )
        title = QLabel("<h2>SlideScope</h2>Open a whole-slide image or a project to begin.")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.buttons: dict[str, QPushButton] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 18)
        layout.addWidget(title)
        for key, text, signal in (
            ("open_slide", "Open Slide...   (Ctrl+O)", self.open_slide),
            ("open_project", "Open Project...   (Ctrl+Shift+O)", self.open_project),
            ("demo", "Run the demo", self.demo),
        ):
            button = QPushButton(text)
            button.setMinimumHeight(32)
            button.clicked.connect(signal)
            layout.addWidget(button)
            self.buttons[key] = button
        layout.addWidget(QLabel("Recent:"))
        self.recent = QListWidget()
        self.recent.setMaximumHeight(140)
        self.recent.itemActivated.connect(self._chosen)
        self.recent.itemDoubleClicked.connect(self._chosen)
        layout.addWidget(self.recent)
        self.setFixedWidth(420)
        parent.installEventFilter(self)

    def show_recent(self, items: list[str]) -> None:
        self.recent.clear()
        for item in items:
            entry = QListWidgetItem(Path(item).name or item)
            entry.setToolTip(item)
            entry.setData(Qt.ItemDataRole.UserRole, item)
            self.recent.addItem(entry)
        if not items:
            self.recent.addItem("(none yet)")

    def _chosen(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path:
            self.recent_chosen.emit(path)

    def place(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.adjustSize()
            self.move(
                max((parent.width() - self.width()) // 2, 0),
                max((parent.height() - self.height()) // 2, 0),
            )

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.Resize:
            self.place()
        return False
