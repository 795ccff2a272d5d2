"""Widgets drawn over the slide canvas: the heatmaps' colour keys, the trust banner, the hover
read-out. They are children of the canvas widget and keep their corner when it resizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import QEvent, QObject, QPoint, QRect, Qt
from qtpy.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter
from qtpy.QtWidgets import QLabel, QWidget

MARGIN = 12


@dataclass(frozen=True)
class LegendEntry:
    """One heatmap's key: its title, its colours (N × 4 float RGBA, low first) and the
    (share of the bar, value label) pairs under it; one stop alone marks a set (a swatch)."""

    title: str
    colors: np.ndarray
    stops: list[tuple[float, str]]


class ColorBar(QWidget):
    """The keys of the heatmaps on the canvas, one compact horizontal bar each, stacked in
    the bottom-right corner (the top layer first): every painted heatmap has its key, and the
    stack covers as little tissue as it can. The alpha ramp is shown over grey, so that
    transparent low values read as 'not painted'."""

    WIDTH = 210
    MAX_WIDTH = 320
    ENTRY_HEIGHT = 50
    SET_HEIGHT = 40  # a set's key: its title and one swatch
    PADDING = 6

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-colorbar")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.entries: list[LegendEntry] = []
        self.resize(self.WIDTH, self.ENTRY_HEIGHT)
        self.hide()

    @property
    def titles(self) -> list[str]:
        """The shown keys' titles, top layer first (none when hidden)."""
        return [entry.title for entry in self.entries]

    def show_legends(self, entries: list[LegendEntry]) -> None:
        """Show ``entries`` (top layer first); none hides the bar."""
        self.entries = list(entries)
        if not self.entries:
            self.hide()
            return
        font = self._font(bold=True)
        widest = max(QFontMetrics(font).horizontalAdvance(e.title) for e in self.entries)
        width = min(max(self.WIDTH, widest + 24), self.MAX_WIDTH)
        self.resize(width, 2 * self.PADDING + sum(map(self._height, self.entries)))
        self.anchor()
        self.show()
        self.raise_()
        self.update()

    def clear(self) -> None:
        self.show_legends([])

    def anchor(self) -> None:
        """Keep the bottom-right corner, above napari's scale bar."""
        parent = self.parentWidget()
        if parent is not None:
            self.move(
                max(parent.width() - self.width() - MARGIN, 0),
                max(parent.height() - self.height() - 48, 0),
            )

    def _height(self, entry: LegendEntry) -> int:
        return self.SET_HEIGHT if len(entry.stops) == 1 else self.ENTRY_HEIGHT

    def _font(self, bold: bool) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(9.0)
        font.setBold(bold)
        return font

    def paintEvent(self, event: object) -> None:
        if not self.entries:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor(20, 20, 20, 200))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(self.rect(), 6, 6)
        top = self.PADDING
        for entry in self.entries:
            self._paint_entry(p, entry, top)
            top += self._height(entry)
        p.end()

    def _paint_entry(self, p: QPainter, entry: LegendEntry, top: int) -> None:
        """One key: its title, then its bar and values (or a set's swatch and name)."""
        light = QColor(235, 235, 235)
        p.setFont(self._font(bold=True))
        p.setPen(light)
        title = QRect(10, top, self.width() - 20, 18)
        text = p.fontMetrics().elidedText(entry.title, Qt.TextElideMode.ElideRight, title.width())
        p.drawText(title, Qt.AlignmentFlag.AlignLeft, text)
        p.setFont(self._font(bold=False))
        bar = QRect(10, top + 19, self.width() - 20, 11)
        if len(entry.stops) == 1:  # a set, not a score: its colour and its name
            r, g, b, _a = (float(v) for v in entry.colors[-1])
            p.fillRect(QRect(bar.left(), bar.top(), 22, bar.height()), QColor.fromRgbF(r, g, b))
            p.drawText(QPoint(bar.left() + 30, bar.bottom()), entry.stops[0][1])
            return
        p.fillRect(bar, QColor(128, 128, 128))
        gradient = QLinearGradient(bar.left(), 0, bar.right(), 0)
        n = len(entry.colors)
        for i in [*range(0, n, max(1, n // 32)), n - 1]:
            r, g, b, a = (float(v) for v in entry.colors[i])
            gradient.setColorAt(i / (n - 1), QColor.fromRgbF(r, g, b, a))
        p.fillRect(bar, gradient)
        metrics = p.fontMetrics()
        for share, label in entry.stops:
            x = int(bar.left() + share * bar.width())
            p.drawLine(x, bar.bottom(), x, bar.bottom() + 3)
            width = metrics.horizontalAdvance(label)
            left = min(max(x - width // 2, 2), self.width() - width - 2)
            p.drawText(QPoint(left, bar.bottom() + 4 + metrics.ascent()), label)


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
        self.colorbar.anchor()
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
