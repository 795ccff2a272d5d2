"""The Annotations dock: tools, classes (set, show/hide, colour), lock, undo, and the table.

A plain widget with signals; :class:`~slidescope.app.ui.annotation_session.AnnotationSession`
(the window) or the plugin's widget connects it to a slide's annotation layer.
"""

from __future__ import annotations

from typing import NamedTuple

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from slidescope.app.annotations.classes import PathClass
from slidescope.app.annotations.model import AnnotationMeasurement, Measurements

TOOLS = (
    ("pan", "Pan", "Move around the slide (Space)"),
    ("select", "Select", "Select and move annotations; Delete removes them"),
    ("vertices", "Vertices", "Drag the vertices of the selected annotation"),
    ("polygon", "Polygon", "Click the corners; double-click to finish"),
    ("freehand", "Freehand", "Draw around a region (lasso)"),
    ("rectangle", "Rectangle", "Drag a rectangle"),
    ("ellipse", "Ellipse", "Drag an ellipse"),
    ("line", "Line", "Measure: drag from one end to the other; its length is in the table"),
    ("point", "Point", "Click to place a point"),
    ("brush", "Brush", "Paint area into the annotation under the brush"),
    ("eraser", "Eraser", "Erase area from annotations"),
)
# Two columns: the right column is 230-270 px wide at 1600-1920 px, where four (class,
# area, length, name) left the class "Tu..." and wrapped the area onto two lines
COLUMNS = ("Annotation", "Size")
#: the tooltips of the table's headers
COLUMN_TIPS = (
    "Class, and the annotation's name where it has one",
    "Area of a region, length of a line (a point has none); a region's perimeter is in "
    "its tooltip",
)


def color_icon(color: tuple[int, int, int], size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


class AnnotationsDock(QWidget):
    """Controls of the annotations of the slide on screen.

    Signals
    -------
    tool_chosen(str), class_chosen(str), class_visibility(str, bool), class_color(str, tuple)
    lock_requested(bool), delete_requested, undo_requested, redo_requested
    brush_size(float), row_clicked(str)
        The annotation id of the clicked table row.
    import_requested, export_requested
    """

    tool_chosen = Signal(str)
    class_chosen = Signal(str)
    class_visibility = Signal(str, bool)
    class_color = Signal(str, tuple)
    lock_requested = Signal(bool)
    delete_requested = Signal()
    undo_requested = Signal()
    redo_requested = Signal()
    brush_size = Signal(float)
    row_clicked = Signal(str)
    import_requested = Signal()
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-annotations")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        self.tool_buttons: dict[str, QPushButton] = {}
        self._tools = QButtonGroup(self)
        grid = QGridLayout()
        for i, (key, text, tip) in enumerate(TOOLS):
            button = QPushButton(text)
            button.setCheckable(True)
            button.setToolTip(tip)
            button.setMinimumWidth(56)  # may be narrower than its text's width in a thin column
            button.clicked.connect(lambda _=False, k=key: self.tool_chosen.emit(k))
            self._tools.addButton(button)
            self.tool_buttons[key] = button
            grid.addWidget(button, i // 3, i % 3)  # three a row: the column is ~270 px
        self.tool_buttons["pan"].setChecked(True)
        layout.addLayout(grid)

        brush = QHBoxLayout()
        brush.addWidget(QLabel("Brush size"))
        self.brush_spin = QDoubleSpinBox()
        self.brush_spin.setRange(1.0, 5000.0)
        self.brush_spin.setValue(50.0)
        self.brush_spin.setSuffix(" µm")
        self.brush_spin.valueChanged.connect(self.brush_size)
        brush.addWidget(self.brush_spin)
        brush.addStretch(1)
        layout.addLayout(brush)

        classes_label = QLabel("Classes (keys 1-9 set the class of the selection)")
        classes_label.setWordWrap(True)
        layout.addWidget(classes_label)
        self.class_grid = QGridLayout()
        layout.addLayout(self.class_grid)
        self.class_buttons: dict[str, QPushButton] = {}
        self.class_checks: dict[str, QCheckBox] = {}
        self._class_group = QButtonGroup(self)

        actions = QGridLayout()
        for i, (text, signal) in enumerate(
            (
                ("Lock", lambda: self.lock_requested.emit(True)),
                ("Unlock", lambda: self.lock_requested.emit(False)),
                ("Delete", self.delete_requested.emit),
                ("Undo", self.undo_requested.emit),
                ("Redo", self.redo_requested.emit),
            )
        ):
            button = QPushButton(text)
            button.clicked.connect(signal)
            actions.addWidget(button, i // 3, i % 3)
        layout.addLayout(actions)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for column, tip in enumerate(COLUMN_TIPS):
            header = self.table.horizontalHeaderItem(column)
            if header is not None and tip:
                header.setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        # the size keeps the width its longest text needs ("99,999 µm²"), the annotation
        # takes the rest; a fixed width, not ResizeToContents, which measures every row on
        # each update (5,000 rows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(1, header.fontMetrics().horizontalAdvance("99,999 µm²") + 14)
        self.class_icons: dict[str, QIcon] = {}
        self.table.cellClicked.connect(self._row_clicked)
        layout.addWidget(self.table, 1)
        self.totals = QLabel("")
        self.totals.setWordWrap(True)
        layout.addWidget(self.totals)

        files = QHBoxLayout()
        for text, signal in (
            ("Import...", self.import_requested),
            ("Export...", self.export_requested),
        ):
            button = QPushButton(text)
            button.clicked.connect(signal)
            files.addWidget(button)
        layout.addLayout(files)
        self.row_ids: list[str] = []

    # -- filling -----------------------------------------------------------------------

    def set_classes(self, classes: list[PathClass], active: str | None, hidden: set[str]) -> None:
        """Show one row per class: a button that sets it, a visibility box, a colour swatch."""
        while self.class_grid.count():
            item = self.class_grid.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()
        self.class_buttons.clear()
        self.class_checks.clear()
        self.class_icons = {c.name: color_icon(c.color) for c in classes}
        for i, path_class in enumerate(classes):
            key = f"{i + 1}  " if i < 9 else "   "
            button = QPushButton(f"{key}{path_class.name}")
            button.setCheckable(True)
            button.setChecked(path_class.name == active)
            button.setIcon(color_icon(path_class.color))
            button.setStyleSheet("text-align: left")
            button.clicked.connect(lambda _=False, n=path_class.name: self.class_chosen.emit(n))
            self._class_group.addButton(button)
            check = QCheckBox()
            check.setToolTip(f"Show the {path_class.name} annotations")
            check.setChecked(path_class.name not in hidden)
            check.toggled.connect(lambda on, n=path_class.name: self.class_visibility.emit(n, on))
            swatch = QPushButton("…")
            swatch.setFixedWidth(28)
            swatch.setToolTip(f"Choose the colour of {path_class.name}")
            swatch.clicked.connect(lambda _=False, c=path_class: self._pick_color(c))
            # one class a row: button, visibility, colour (the column is ~270 px wide)
            self.class_grid.addWidget(button, i, 0)
            self.class_grid.addWidget(check, i, 1)
            self.class_grid.addWidget(swatch, i, 2)
            self.class_grid.setColumnStretch(0, 1)
            self.class_buttons[path_class.name] = button
            self.class_checks[path_class.name] = check

    def _pick_color(self, path_class: PathClass) -> None:
        color = QColorDialog.getColor(
            QColor(*path_class.color), self, f"Colour of {path_class.name}"
        )
        if color.isValid():
            self.class_color.emit(path_class.name, (color.red(), color.green(), color.blue()))

    def set_table(self, rows: list[TableRow], measured: Measurements | None = None) -> None:
        """One row per annotation; the totals per class below."""
        self.table.setUpdatesEnabled(False)
        self.table.setRowCount(len(rows))
        self.row_ids = [r.id for r in rows]
        no_icon = QIcon()
        for row, entry in enumerate(rows):
            label, size = self._item(row, 0), self._item(row, 1)
            label.setText(entry.label)
            label.setToolTip(entry.label)
            label.setIcon(self.class_icons.get(entry.classification, no_icon))
            size.setText(entry.size)
            size.setToolTip(entry.detail)
        self.table.setUpdatesEnabled(True)
        if measured is not None:
            self.totals.setText(
                "  ".join(
                    f"{c.classification}: {c.count} · {c.area_mm2:.4f} mm²"
                    for c in measured.per_class.values()
                )
            )

    def _item(self, row: int, column: int) -> QTableWidgetItem:
        item = self.table.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            if column == 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)
        return item

    def set_tool(self, tool: str) -> None:
        if tool in self.tool_buttons:
            self.tool_buttons[tool].setChecked(True)

    def set_active_class(self, name: str | None) -> None:
        if name in self.class_buttons:
            self.class_buttons[name].setChecked(True)

    def _row_clicked(self, row: int, _column: int) -> None:
        if 0 <= row < len(self.row_ids):
            self.row_clicked.emit(self.row_ids[row])


class TableRow(NamedTuple):
    """One annotation as the table shows it (measures as text, in their units; a tuple: a
    table of 5,000 is rebuilt after every edit)."""

    id: str
    classification: str
    name: str
    size: str  # a region's area, a line's length, "—" for a point
    detail: str  # every measure, in words (the size's tooltip)

    @classmethod
    def of(cls, measured: AnnotationMeasurement, kind: str, name: str) -> TableRow:
        """The row of an annotation of ``kind`` (``polygon``, ``line``, ``point``)."""
        if kind == "point":
            size, detail = "—", "A point: no area or length"
        elif kind == "line":
            size = length_text(measured.perimeter_um)
            detail = f"Length {size}"
        else:
            size = area_text(measured.area_um2)
            detail = f"Area {size} · perimeter {length_text(measured.perimeter_um)}"
        return cls(measured.id, measured.classification, name, size, detail)

    @property
    def label(self) -> str:
        """The class, and the name after it where there is one."""
        return f"{self.classification} · {self.name}" if self.name else self.classification


def area_text(area_um2: float) -> str:
    """An area in the unit a pathologist reads best: µm² when small, mm² otherwise, with
    three or four significant figures (as wide as "99,999 µm²", the table's column)."""
    if area_um2 < 1e5:
        return f"{area_um2:,.0f} µm²"
    mm2 = area_um2 / 1e6
    decimals = 3 if mm2 < 10 else 2 if mm2 < 100 else 1 if mm2 < 1000 else 0
    return f"{mm2:,.{decimals}f} mm²"


def length_text(length_um: float) -> str:
    """A length: µm below a millimetre, mm from there (a tumour's size is read in mm)."""
    return f"{length_um:,.0f} µm" if length_um < 1000 else f"{length_um / 1000:,.2f} mm"
