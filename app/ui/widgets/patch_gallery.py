"""A gallery of patches (the most attended, the hardest); click one to go there."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

ICON = 144
#: room under each tile for a two-line caption
CAPTION_HEIGHT = 40


class PatchGallery(QWidget):
    """Groups of patch images, each with its caption.

    Signals
    -------
    patch_clicked(x, y)
        Level-0 centre of the patch the user clicked.
    """

    patch_clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-gallery")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self.lists: dict[str, QListWidget] = {}
        self._titles: list[QLabel] = []
        self._empty = QLabel("No analysis yet.")
        self._layout.addWidget(self._empty)

    def show_groups(self, groups: dict[str, list[tuple[str, float, float, np.ndarray]]]) -> None:
        """``{title: [(caption, centre x, centre y, rgb image), ...]}`` (empty clears)."""
        for widget in [*self.lists.values(), *self._titles]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self.lists = {}
        self._titles: list[QLabel] = []
        self._empty.setVisible(not groups)
        for title, patches in groups.items():
            label = QLabel(f"<b>{title}</b>")
            view = QListWidget()
            view.setViewMode(QListWidget.ViewMode.IconMode)
            view.setIconSize(QSize(ICON, ICON))
            view.setResizeMode(QListWidget.ResizeMode.Adjust)
            view.setMovement(QListWidget.Movement.Static)
            view.setWordWrap(True)
            view.setGridSize(QSize(ICON + 16, ICON + CAPTION_HEIGHT))
            view.setSpacing(4)
            for caption, x, y, image in patches:
                item = QListWidgetItem(_icon(image), caption)
                item.setData(Qt.ItemDataRole.UserRole, (float(x), float(y)))
                item.setToolTip(f"{caption}: level-0 x {x:,.0f}, y {y:,.0f}")
                view.addItem(item)
            view.itemClicked.connect(self._clicked)
            self._titles.append(label)
            self._layout.addWidget(label)
            self._layout.addWidget(view, 1)
            self.lists[title] = view

    def _clicked(self, item: QListWidgetItem) -> None:
        x, y = item.data(Qt.ItemDataRole.UserRole)
        self.patch_clicked.emit(x, y)


def _icon(image: np.ndarray) -> QIcon:
    rgb = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    h, w = rgb.shape[:2]
    qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(qimage))
