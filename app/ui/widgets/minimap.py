"""A small overview of the whole slide with the current view drawn on it; click to go there."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from qtpy.QtWidgets import QSizePolicy, QWidget


class Minimap(QWidget):
    """The slide's thumbnail and the viewed rectangle, both in level-0 pixels.

    Signals
    -------
    clicked(x, y)
        Level-0 position the user clicked or dragged to.
    """

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-minimap")
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._pixmap: QPixmap | None = None
        self._slide_size = (1.0, 1.0)
        self.view_rect: tuple[float, float, float, float] | None = None

    def set_slide(self, thumbnail: np.ndarray | None, width: int, height: int) -> None:
        """Show a slide (``None`` clears); ``width``/``height`` are its level-0 size."""
        if thumbnail is None:
            self._pixmap = None
        else:
            rgb = np.ascontiguousarray(np.asarray(thumbnail, dtype=np.uint8)[..., :3])
            h, w = rgb.shape[:2]
            image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
            self._pixmap = QPixmap.fromImage(image.copy())
        self._slide_size = (float(max(width, 1)), float(max(height, 1)))
        self.view_rect = None
        self.update()

    def set_view(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """The viewed region, level-0 pixels."""
        self.view_rect = (x0, y0, x1, y1)
        self.update()

    def _target(self) -> QRectF:
        """Where the thumbnail is drawn: fitted and centred, aspect kept."""
        sw, sh = self._slide_size
        k = min(self.width() / sw, self.height() / sh)
        w, h = sw * k, sh * k
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def to_level0(self, point: QPointF) -> tuple[float, float]:
        target = self._target()
        sw, sh = self._slide_size
        x = (point.x() - target.left()) / max(target.width(), 1e-9) * sw
        y = (point.y() - target.top()) / max(target.height(), 1e-9) * sh
        return (min(max(x, 0.0), sw), min(max(y, 0.0), sh))

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(38, 41, 48))
        target = self._target()
        if self._pixmap is not None:
            painter.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))
        if self.view_rect is not None:
            x0, y0, x1, y1 = self.view_rect
            k = target.width() / self._slide_size[0]
            rect = QRectF(
                target.left() + x0 * k, target.top() + y0 * k, (x1 - x0) * k, (y1 - y0) * k
            ).intersected(target.adjusted(-1, -1, 1, 1))
            painter.setPen(QPen(QColor(255, 215, 0), 2))
            painter.drawRect(rect)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and self._pixmap is not None:
            self.clicked.emit(*self.to_level0(event.position()))

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and self._pixmap is not None and event.buttons():
            self.clicked.emit(*self.to_level0(event.position()))
