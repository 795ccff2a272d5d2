"""Widgets drawn over the slide canvas: the heatmap's colour bar, the trust banner, the hover
read-out. They are children of the canvas widget and keep their corner when it resizes."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QEvent, QObject, QPoint, QRect, Qt
from qtpy.QtGui import QColor, QLinearGradient, QPainter
from qtpy.QtWidgets import QLabel, QWidget

MARGIN = 12


class ColorBar(QWidget):
    """A vertical colour bar with its title and value labels (the alpha ramp shown over a
    checkerboard-free grey, so transparent low values read as 'not painted')."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-colorbar")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.title = ""
        self.colors: np.ndarray | None = None
        self.stops: list[tuple[float, str]] = []
        self.resize(215, 190)
        self.hide()

    def show_legend(self, title: str, colors: np.ndarray, stops: list[tuple[float, str]]) -> None:
        """Show ``colors`` (N, 4 float RGBA, low first) with ``stops`` (share, label)."""
        self.title, self.colors, self.stops = title, np.asarray(colors), stops
        self.setToolTip(title)
        self.show()
        self.raise_()
        self.update()

    def clear(self) -> None:
        self.colors = None
        self.hide()

    def paintEvent(self, event: object) -> None:
        if self.colors is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor(20, 20, 20, 200))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(self.rect(), 6, 6)
        p.setPen(QColor(235, 235, 235))
        font = p.font()
        font.setPointSizeF(9.5)
        font.setBold(True)
        p.setFont(font)
        p.drawText(QRect(8, 4, self.width() - 16, 20), Qt.AlignmentFlag.AlignLeft, self.title)
        font.setBold(False)
        p.setFont(font)
        bar = QRect(10, 30, 22, self.height() - 42)
        p.fillRect(bar, QColor(128, 128, 128))
        gradient = QLinearGradient(0, bar.bottom(), 0, bar.top())
        n = len(self.colors)
        for i in range(0, n, max(1, n // 32)):
            r, g, b, a = (float(v) for v in self.colors[i])
            gradient.setColorAt(i / (n - 1), QColor.fromRgbF(r, g, b, a))
        r, g, b, a = (float(v) for v in self.colors[-1])
        gradient.setColorAt(1.0, QColor.fromRgbF(r, g, b, a))
        p.fillRect(bar, gradient)
        p.setPen(QColor(235, 235, 235))
        for share, label in self.stops:
            y = int(bar.bottom() - share * bar.height())
            p.drawLine(bar.right(), y, bar.right() + 4, y)
            p.drawText(QPoint(bar.right() + 8, y + 5), label)
        p.end()


class Banner(QLabel):
    """A warning across the top of the canvas (the trust flag)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-trust-banner")
        self.setWordWrap(True)
        self.setStyleSheet(
            "QLabel { background: rgba(170, 30, 30, 225); color: white; font-weight: bold;"
            " padding: 6px 10px; border-radius: 4px; }"
        )
        self.hide()

    def show_text(self, text: str) -> None:
        self.setText(text)
        self.setToolTip(text)
        self.setVisible(bool(text))
        if text:
            self.raise_()


class ErrorNote(QLabel):
    """The last error, whole and wrapped, at the foot of the canvas (napari's toast shows one
    elided line, which cut long messages after their first words); a click dismisses it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-error")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)  # a path or "<...>" is text, not markup
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet(
            "QLabel { background: rgba(60, 20, 20, 235); color: white; padding: 6px 10px;"
            " border: 1px solid #d04040; border-radius: 4px; }"
        )
        self.setToolTip("Click to dismiss")
        self.hide()

    def show_error(self, text: str) -> None:
        self.setText(text)
        self.adjustSize()
        parent = self.parentWidget()
        if parent is not None:
            self.move(MARGIN, max(parent.height() - self.height() - 48, 0))
        self.show()
        self.raise_()

    def mousePressEvent(self, event: object) -> None:
        self.hide()


class HoverLabel(QLabel):
    """The scores under the cursor, beside it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-hover")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet(
            "QLabel { background: rgba(20, 20, 20, 215); color: white; padding: 4px 6px;"
            " border-radius: 4px; }"
        )
        self.hide()

    def show_at(self, text: str, x: float, y: float) -> None:
        """Show ``text`` near canvas pixel ``(x, y)`` (kept inside the canvas)."""
        if not text:
            self.hide()
            return
        if text != self.text():
            self.setText(text)
            self.adjustSize()
        parent = self.parentWidget()
        w, h = (parent.width(), parent.height()) if parent is not None else (10_000, 10_000)
        left = int(x) + 16 if int(x) + 16 + self.width() < w else int(x) - 16 - self.width()
        top = min(max(int(y) + 16, 0), max(h - self.height(), 0))
        self.move(max(left, 0), top)
        self.show()
        self.raise_()


class CanvasOverlays(QObject):
    """The overlays of one canvas, placed again whenever the canvas resizes."""

    def __init__(self, canvas: QWidget) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.colorbar = ColorBar(canvas)
        self.banner = Banner(canvas)
        self.hover = HoverLabel(canvas)
        self.error = ErrorNote(canvas)
        canvas.installEventFilter(self)
        self.place()

    def place(self) -> None:
        w, h = self.canvas.width(), self.canvas.height()
        self.colorbar.move(
            max(w - self.colorbar.width() - MARGIN, 0), max(h - self.colorbar.height() - 48, 0)
        )
        self.banner.setFixedWidth(max(w - 2 * MARGIN, 100))
        self.banner.adjustSize()
        self.banner.move(MARGIN, MARGIN)
        self.error.setFixedWidth(max(min(w - 2 * MARGIN, 720), 100))
        self.error.adjustSize()
        self.error.move(MARGIN, max(h - self.error.height() - 48, 0))

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.Resize:
            self.place()
        return False
