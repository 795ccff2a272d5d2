"""The Train dock: teach the model from the project's annotated slides, watch it learn,
compare, keep or discard; and where to annotate next.

A view only: :class:`~slidescope.app.ui.train_session.TrainSession` listens to its
signals, runs the core jobs and fills it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from slidescope.app.training.patch_labels import LABEL_RULE, LABELS_ONLY_CAUTION, PATCH_RULE
from slidescope.app.ui.widgets.wrapping import breakable
from slidescope.models.training.finetune_settings import VALIDATION_RULE


@dataclass
class SlideRow:
    """One project slide as the dock lists it."""

    slide_id: str
    label: str | None
    regions: int


class TrainDock(QWidget):
    """Controls of fine-tuning and of the review queue.

    Signals
    -------
    start_requested, cancel_requested, keep_requested, discard_requested
        The buttons.
    model_chosen(str)
        The model picker switched to a version.
    review_find, review_next, review_previous
        The review queue's buttons (N / P keys in the window).
    review_label(str)
        Label the patch under review as this class.
    """

    start_requested = Signal()
    cancel_requested = Signal()
    keep_requested = Signal()
    discard_requested = Signal()
    model_chosen = Signal(str)
    review_find = Signal()
    review_next = Signal()
    review_previous = Signal()
    review_label = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-train")
        self._regions: dict[str, int] = {}  # slide id -> its regions, as listed
        layout = QVBoxLayout(self)
        layout.addWidget(self._models_box())
        layout.addWidget(self._slides_box())
        layout.addWidget(self._settings_box())
        layout.addWidget(self._curves_box())
        layout.addWidget(self._review_box())
        self.set_running(False)
        self.set_comparing(False)

    # -- building ------------------------------------------------------------------------

    def _models_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        self.model_picker = QComboBox()
        # a long version name must not widen the column: the list opens wide enough
        self.model_picker.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model_picker.setMinimumContentsLength(12)
        self.model_picker.setToolTip("the active model version (heatmaps are painted with it)")
        self.model_picker.activated.connect(
            lambda i: self.model_chosen.emit(self.model_picker.itemData(i) or "")
        )
        self.keep_button = QPushButton("Keep new")
        self.keep_button.clicked.connect(self.keep_requested)
        self.discard_button = QPushButton("Discard new")
        self.discard_button.clicked.connect(self.discard_requested)
        # two rows: the column is about 270 px wide
        inner = QVBoxLayout(box)
        inner.addWidget(self.model_picker)
        row = QHBoxLayout()
        row.addWidget(self.keep_button)
        row.addWidget(self.discard_button)
        inner.addLayout(row)
        return box

    def _slides_box(self) -> QGroupBox:
        box = QGroupBox("Slides to learn from")
        self.slides_table = QTableWidget(0, 1)
        self.slides_table.setHorizontalHeaderLabels(["Slide: label, regions"])
        # the dock is ~270 px wide: one column, so the name has all of it, wrapped at its
        # separators (slide names share long prefixes: elided ones cannot be told apart),
        # with its label and regions on the line below; nothing scrolls sideways
        self.slides_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.slides_table.setWordWrap(True)
        self.slides_table.setTextElideMode(Qt.ElideNone)
        self.slides_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.slides_table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.slides_table.verticalHeader().setVisible(False)
        self.slides_table.setToolTip(f"Patch labels: {PATCH_RULE}.\nSlide labels: {LABEL_RULE}.")
        self.slides_table.setMinimumHeight(150)  # three slides, two or three lines each
        self.slides_table.itemChanged.connect(self._ticks_changed)
        # said before Start, while the pathologist can still outline a few lesions
        self.caution = QLabel(LABELS_ONLY_CAUTION)
        self.caution.setWordWrap(True)
        self.caution.setStyleSheet("color: #e0a030;")
        self.caution.setVisible(False)
        inner = QVBoxLayout(box)
        inner.addWidget(self.slides_table)
        inner.addWidget(self.caution)
        return box

    def _settings_box(self) -> QGroupBox:
        box = QGroupBox("Fine-tuning")
        form = QFormLayout(box)
        # labels above their fields in a thin column
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.method = QComboBox()
        self.method.addItems(["plain", "mhim", "aem"])
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.epochs.setValue(15)
        self.instance_weight = QDoubleSpinBox()
        self.instance_weight.setRange(0.0, 10.0)
        self.instance_weight.setSingleStep(0.1)
        self.instance_weight.setValue(1.0)
        self.instance_weight.setToolTip("weight of the instance loss on annotated patches")
        self.outside_class = QLineEdit()
        self.outside_class.setPlaceholderText("e.g. normal (patches outside every region)")
        form.addRow("Method", self.method)
        form.addRow("Epochs", self.epochs)
        form.addRow("Instance-loss weight", self.instance_weight)
        form.addRow("Outside class", self.outside_class)
        self.start_button = QPushButton("Start fine-tuning")
        self.start_button.clicked.connect(self.start_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setToolTip(VALIDATION_RULE)
        form.addRow(self.status)
        return box

    def _curves_box(self) -> QGroupBox:
        box = QGroupBox("Learning curves")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(90)
        self.plot.addLegend(offset=(5, 5))
        self.plot.setLabel("bottom", "epoch")
        self.loss_curve = self.plot.plot([], [], pen=pg.mkPen("#d62728", width=2), name="loss")
        self.auc_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=5,
            name="validation AUC",
        )  # fmt: skip
        inner = QVBoxLayout(box)
        inner.addWidget(self.plot)
        self._points: dict[str, list[tuple[float, float]]] = {"loss": [], "val_auc": []}
        return box

    def _review_box(self) -> QGroupBox:
        box = QGroupBox("Where to annotate next")
        self.find_button = QPushButton("Find")
        self.find_button.clicked.connect(self.review_find)
        self.previous_button = QPushButton("◀ Prev (P)")
        self.previous_button.clicked.connect(self.review_previous)
        self.next_button = QPushButton("Next (N) ▶")
        self.next_button.clicked.connect(self.review_next)
        self.review_class = QComboBox()
        self.review_class.setEditable(True)
        self.label_button = QPushButton("Label patch (L)")
        self.label_button.clicked.connect(
            lambda: self.review_label.emit(self.review_class.currentText())
        )
        self.review_status = QLabel("")
        self.review_status.setWordWrap(True)
        inner = QVBoxLayout(box)
        inner.addWidget(self.find_button)
        steps = QHBoxLayout()
        for widget in (self.previous_button, self.next_button):
            steps.addWidget(widget)
        labelling = QHBoxLayout()
        labelling.addWidget(self.review_class, 1)
        labelling.addWidget(self.label_button)
        inner.addLayout(steps)
        inner.addLayout(labelling)
        inner.addWidget(self.review_status)
        return box

    # -- filling -------------------------------------------------------------------------

    def set_slides(self, rows: list[SlideRow]) -> None:
        """List the project's slides, ticking those with a label or regions."""
        self._regions = {row.slide_id: row.regions for row in rows}
        table = self.slides_table
        # one pass: each item's signal would otherwise re-read every tick (quadratic; a
        # 1,000-slide project took 6-35 s), and each row would be laid out alone
        table.blockSignals(True)
        table.setUpdatesEnabled(False)
        try:
            self._fill(rows)
        finally:
            table.setUpdatesEnabled(True)
            table.blockSignals(False)
        self._ticks_changed()

    def _fill(self, rows: list[SlideRow]) -> None:
        self.slides_table.setRowCount(0)  # new rows, not items replaced one by one (slower)
        self.slides_table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            regions = f"{row.regions} region{'' if row.regions == 1 else 's'}"
            item = QTableWidgetItem(
                f"{breakable(row.slide_id)}\n{row.label or 'no label'} · {regions}"
            )
            item.setData(Qt.UserRole, row.slide_id)
            item.setToolTip(row.slide_id)
            item.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
            usable = bool(row.label) or row.regions > 0
            item.setCheckState(Qt.Checked if usable else Qt.Unchecked)
            self.slides_table.setItem(i, 0, item)

    def _ticks_changed(self, _item: QTableWidgetItem | None = None) -> None:
        """Show the caution while the ticked slides have no regions between them."""
        ticked = self.ticked()
        self.caution.setVisible(bool(ticked) and not any(self._regions.get(s) for s in ticked))

    def ticked(self) -> list[str]:
        """The slide ids ticked for training."""
        table = self.slides_table
        return [
            item.data(Qt.UserRole)
            for item in (table.item(i, 0) for i in range(table.rowCount()))
            if item is not None and item.checkState() == Qt.Checked
        ]

    def set_models(self, names: list[tuple[str, str]], active: str | None) -> None:
        """Fill the model picker with (name, shown text) pairs and select ``active``."""
        self.model_picker.clear()
        for name, text in names:
            self.model_picker.addItem(text, name)
        index = self.model_picker.findData(active)
        if index >= 0:
            self.model_picker.setCurrentIndex(index)

    def set_classes(self, names: list[str]) -> None:
        current = self.review_class.currentText()
        self.review_class.clear()
        self.review_class.addItems(names)
        if current:
            self.review_class.setCurrentText(current)

    def clear_curves(self) -> None:
        self._points = {"loss": [], "val_auc": []}
        self.loss_curve.setData([], [])
        self.auc_curve.setData([], [])

    def add_epoch(self, figures: dict[str, float]) -> None:
        """Plot one epoch's figures (``epoch``, ``loss``, optional ``val_auc``)."""
        epoch = float(figures.get("epoch", len(self._points["loss"]) + 1))
        for key, curve in (("loss", self.loss_curve), ("val_auc", self.auc_curve)):
            if key in figures:
                self._points[key].append((epoch, float(figures[key])))
                xs, ys = zip(*self._points[key])
                curve.setData(list(xs), list(ys))

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def set_comparing(self, comparing: bool) -> None:
        """Keep / Discard apply while a new version is shown beside the old one."""
        self.keep_button.setEnabled(comparing)
        self.discard_button.setEnabled(comparing)
