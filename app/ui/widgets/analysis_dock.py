"""The analysis dock: checkpoint, run buttons, heatmap layers and their display controls."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)
from slidescope.app.analysis.heatmaps import NORMALISATION_NAMES, NORMALISATIONS, DisplayChoices
from slidescope.app.display.heatmap_layers import LAYER_KINDS
from slidescope.app.ui.widgets.wrapping import breakable

COLORMAPS = ("turbo", "inferno", "viridis", "magma", "plasma", "jet", "Reds", "YlOrRd")


class AnalysisDock(QWidget):
    """Controls of the analysis; :class:`~slidescope.app.ui.analysis_session.AnalysisSession`
    listens to its signals and fills its read-outs.

    Signals
    -------
    choose_checkpoint, run_slide, run_project, export_requested
        The buttons.
    display_changed
        Any layer or display control changed.
    """

    choose_checkpoint = Signal()
    run_slide = Signal()
    run_project = Signal()
    export_requested = Signal()
    display_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-analysis")
        self.checkpoint_label = QLabel("No checkpoint")
        self.checkpoint_label.setWordWrap(True)
        choose = QPushButton("Checkpoint...")
        choose.clicked.connect(self.choose_checkpoint)
        self.run_slide_button = QPushButton("Analyse this slide")
        self.run_slide_button.clicked.connect(self.run_slide)
        self.run_project_button = QPushButton("Analyse project")
        self.run_project_button.clicked.connect(self.run_project)
        self.export_button = QPushButton("Export...")
        self.export_button.clicked.connect(self.export_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_slide_button)
        buttons.addWidget(self.run_project_button)

        self.kind_boxes: dict[str, QCheckBox] = {}
        layers = QGroupBox("Heatmaps")
        layers_layout = QVBoxLayout(layers)
        # one kind at a time by default: stacked heatmaps hide each other
        self.kind_group = QButtonGroup(self)
        self.kind_group.setExclusive(True)
        for kind, title in LAYER_KINDS:
            box = QCheckBox(title)
            box.setChecked(kind == "attention")
            box.toggled.connect(self.display_changed)
            self.kind_group.addButton(box)
            self.kind_boxes[kind] = box
            layers_layout.addWidget(box)
        self.several = QCheckBox("overlay several")
        self.several.setToolTip("Show more than one kind of heatmap at once")
        self.several.toggled.connect(self._several_toggled)
        layers_layout.addWidget(self.several)
        self.class_combo = QComboBox()
        self.class_combo.currentIndexChanged.connect(self.display_changed)
        layers_layout.addWidget(self.class_combo)

        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.normalisation = QComboBox()
        for key in NORMALISATIONS:
            self.normalisation.addItem(NORMALISATION_NAMES[key], key)
        self.normalisation.setCurrentIndex(list(NORMALISATIONS).index("minmax"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.threshold_on = QCheckBox("threshold")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-1e6, 1e6)
        self.threshold.setDecimals(3)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.5)
        self.smooth = QCheckBox("smoothing")
        for signal in (
            self.colormap.currentIndexChanged,
            self.normalisation.currentIndexChanged,
            self.opacity.valueChanged,
            self.threshold_on.toggled,
            self.threshold.valueChanged,
            self.smooth.toggled,
        ):
            signal.connect(self.display_changed)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_on)
        threshold_row.addWidget(self.threshold)
        form = QFormLayout()
        form.addRow("Colormap", self.colormap)
        form.addRow("Opacity", self.opacity)
        form.addRow("Normalisation", self.normalisation)
        form.addRow(threshold_row)
        form.addRow(self.smooth)

        self.readout = QLabel(
            "Hover over a heatmap to read a patch's scores; click to keep it. "
            "F3 / Shift+F3: next / previous hotspot."
        )
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.checkpoint_label)
        layout.addWidget(choose)
        layout.addLayout(buttons)
        layout.addWidget(layers)
        layout.addLayout(form)
        layout.addWidget(self.readout)
        layout.addWidget(self.export_button)
        layout.addStretch(1)
        self.set_classes([])

    def set_checkpoint(self, path: Path | None) -> None:
        # a long model name wraps in the column rather than widening it
        self.checkpoint_label.setText(
            f"Checkpoint: {breakable(path.name)}" if path else "No checkpoint"
        )
        self.checkpoint_label.setToolTip(str(path) if path else "")

    def set_classes(self, names: list[str], chosen: str | None = None) -> None:
        """The classes of the probability heatmap; ``chosen`` (the predicted one) selected.

        "all classes" comes last: stacked class maps hide each other.
        """
        current = self.class_combo.currentData()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for name in names:
            self.class_combo.addItem(f"class {name}", name)
        if names:
            self.class_combo.addItem("all classes", None)
        index = self.class_combo.findData(chosen if chosen is not None else current)
        self.class_combo.setCurrentIndex(max(index, 0))
        self.class_combo.blockSignals(False)

    def _several_toggled(self, on: bool) -> None:
        self.kind_group.setExclusive(not on)
        if not on:  # back to one kind: keep the first one switched on
            kinds = self.kinds()
            for kind, box in self.kind_boxes.items():
                box.blockSignals(True)
                box.setChecked(bool(kinds) and kind == kinds[0])
                box.blockSignals(False)
            self.display_changed.emit()

    def show_kinds(self, kinds: list[str]) -> None:
        """Switch on exactly ``kinds`` (several at once turns on "overlay several")."""
        if len(kinds) > 1:
            self.several.setChecked(True)
        for kind, box in self.kind_boxes.items():
            box.setChecked(kind in kinds)

    def kinds(self) -> list[str]:
        """The heatmap kinds switched on, in stacking order."""
        return [kind for kind, _ in LAYER_KINDS if self.kind_boxes[kind].isChecked()]

    def class_name(self) -> str | None:
        return self.class_combo.currentData()

    def display(self) -> DisplayChoices:
        """The display choices as the core (and the exports) understand them."""
        return DisplayChoices(
            normalisation=self.normalisation.currentData(),
            smooth=self.smooth.isChecked(),
            threshold=self.threshold.value() if self.threshold_on.isChecked() else None,
            colormap=self.colormap.currentText(),
            opacity=self.opacity.value() / 100.0,
        )
