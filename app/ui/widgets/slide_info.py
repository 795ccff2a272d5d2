"""The slide-info panel: what the file is, its size, resolution and pyramid.

It shows the rows of :func:`slidescope.app.slides.summary.summarize_slide`, the facts
``slidescope info`` prints.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFormLayout, QLabel, QWidget
from slidescope.app.slides.summary import summarize_slide
from slidescope.app.ui.widgets.wrapping import breakable

#: a word longer than this (characters) would widen the column: it is shown breakable
LONG_WORD = 24
#: the colour of the rows' names, between napari's dark and light themes' text
HEADING_COLOUR = "#9a9ea6"
#: the rows every slide has (shown as "-" with no slide)
_BASE_ROWS = ("Slide", "File", "Format", "Size", "Resolution", "Physical size", "Levels")


class SlideInfo(QWidget):
    """Name, format, level-0 size, mpp and physical size, levels, images, vendor metadata."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-slide-info")
        self._form = QFormLayout(self)
        # the column is ~230 px: each value goes below its name, with the whole width to
        # wrap in (the dock scrolls), never cut or squeezed into a sliver
        self._form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        self.fields: dict[str, QLabel] = {}
        self.show_slide(None)

    def show_slide(self, slide: Any | None) -> None:
        """Fill the panel from an open :class:`~slidescope.app.slides.slide.Slide` (None clears)."""
        while self._form.rowCount():
            self._form.removeRow(0)
        rows = (
            [(name, "-") for name in _BASE_ROWS]
            if slide is None
            else summarize_slide(slide).rows()
        )
        self.fields = {}
        for name, text in rows:
            label = QLabel(text)
            label.setWordWrap(True)
            if max(map(len, text.split()), default=0) > LONG_WORD:
                # a path or long name has no spaces to wrap at: it may break after each
                # separator (shown only: the breaks must not go into text someone copies,
                # so this one is read, or taken whole from its tooltip)
                label.setText(breakable(text))
                label.setToolTip(text)
            else:
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[name] = label
            heading = QLabel(name)  # quieter than the value it names
            heading.setStyleSheet(f"color: {HEADING_COLOUR};")
            self._form.addRow(heading, label)
