"""The slide's prediction: its label by the checkpoint's rule and every class's probability."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QFormLayout, QLabel, QProgressBar, QVBoxLayout, QWidget
from slidescope.app.ui.widgets.wrapping import breakable
from slidescope.models.prediction import decision_threshold, predict_label


class PredictionPanel(QWidget):
    """Predicted class in words and one bar per class."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-prediction")
        self.headline = QLabel("No analysis yet.")
        self.headline.setWordWrap(True)
        self.trust = QLabel("")
        self.trust.setObjectName("slidescope-trust")
        self.trust.setWordWrap(True)
        self.trust.setStyleSheet("QLabel { color: #ff6b6b; font-weight: bold; }")
        self.trust.hide()
        self._bars = QFormLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.headline)
        layout.addWidget(self.trust)
        layout.addLayout(self._bars)
        layout.addStretch(1)
        self.bars: dict[str, QProgressBar] = {}

    def show_prediction(
        self,
        class_names: list[str] | None,
        probabilities: np.ndarray | None,
        note: str = "",
        threshold: float | None = None,
    ) -> None:
        """Show a prediction (None clears), labelled by the checkpoint's ``threshold`` rule."""
        while self._bars.rowCount():
            self._bars.removeRow(0)
        self.bars = {}
        if not class_names or probabilities is None:
            self.headline.setText(note or "No analysis yet.")
            return
        probabilities = np.asarray(probabilities, dtype=float)
        if not np.isfinite(probabilities).all():
            self.headline.setText(note or "No tissue found: no prediction.")
            return
        best = predict_label(probabilities, threshold)
        if best is None:
            self.headline.setText(note or "No tissue found: no prediction.")
            return
        cut = decision_threshold(threshold, len(class_names))
        rule = f"; {class_names[1]} from {cut:.0%}" if cut is not None and cut != 0.5 else ""
        self.headline.setText(
            f"Prediction: <b>{class_names[best]}</b> ({probabilities[best]:.1%}{rule})"
            + (f"<br>{breakable(note)}" if note else "")  # it names the model file
        )
        for name, p in zip(class_names, probabilities):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(float(p) * 1000))
            bar.setFormat(f"{p:.1%}")
            self._bars.addRow(name, bar)
            self.bars[name] = bar

    def show_trust(self, headline: str, notes: tuple[str, ...] = ()) -> None:
        """The trust flag: ``headline`` in red when the slide is outside the model's experience."""
        text = headline[:1].upper() + headline[1:] if headline else ""
        # the dock is short: the first reason here, every reason in the tooltip (and whole
        # on the canvas)
        title, _, reasons = text.partition(": ")
        first, *more = reasons.split("; ") if reasons else [""]
        shown = f"{title}: {first}" if first else title
        if more:
            shown += f" (+{len(more)} more: hover)"
        self.trust.setText(("⚠ " + shown) if text else "")
        self.trust.setToolTip("\n".join([*(reasons.split("; ") if reasons else []), *notes]))
        self.trust.setVisible(bool(text))
