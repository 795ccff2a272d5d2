"""A progress bar with a cancel button for the core jobs running in the background."""

from __future__ import annotations

import contextlib
from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget
from slidescope.app.jobs import Progress


class JobProgress(QWidget):
    """One line per running job: what it does, how far it is, and a Cancel button.

    :func:`slidescope.app.ui.workers.start_job` adds and removes the lines.
    """

    def __init__(self, parent: QWidget | None = None, compact: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-jobs")
        self.compact = compact
        # compact: one line per job side by side, for the status bar
        self._layout = QHBoxLayout(self) if compact else QVBoxLayout(self)
        margin = 0 if compact else 4
        self._layout.setContentsMargins(margin, margin, margin, margin)
        self._idle = QLabel("" if compact else "No background work.")
        self._layout.addWidget(self._idle)
        self._rows: dict[int, _JobRow] = {}

    @property
    def running(self) -> int:
        """How many jobs are shown."""
        return len(self._rows)

    def add(self, title: str, worker: Any) -> _JobRow:
        row = _JobRow(title, worker, self, self.compact)
        self._rows[id(worker)] = row
        self._layout.addWidget(row)
        self._idle.setVisible(False)
        return row

    def remove(self, worker: Any) -> None:
        row = self._rows.pop(id(worker), None)
        if row is not None:
            row.setParent(None)
            row.deleteLater()
        self._idle.setVisible(not self._rows)


class _JobRow(QWidget):
    def __init__(self, title: str, worker: Any, parent: QWidget, compact: bool = False) -> None:
        super().__init__(parent)
        self.title = title
        self.label = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first step says how much there is
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip(f"Stop: {title}")
        self.cancel.clicked.connect(worker.quit)
        self.cancel.clicked.connect(lambda: self.label.setText(f"{title}: cancelling..."))
        if compact:
            self.bar.setFixedWidth(120)
            self.bar.setMaximumHeight(16)
            self.cancel.setText("✕")
            self.cancel.setFixedWidth(24)
            row = QHBoxLayout(self)
            row.setContentsMargins(0, 0, 6, 0)
            row.addWidget(self.label)
            row.addWidget(self.bar)
            row.addWidget(self.cancel)
            return
        line = QHBoxLayout()
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.bar, 1)
        line.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addLayout(line)

    def show_progress(self, step: Progress) -> None:
        # the row may be deleted (window closing) while the job goes on
        with contextlib.suppress(RuntimeError):
            self._show(step)

    def _show(self, step: Progress) -> None:
        if step.total:
            self.bar.setRange(0, int(step.total))
            self.bar.setValue(min(int(step.done), int(step.total)))
        else:
            self.bar.setRange(0, 0)
        self.label.setText(f"{self.title}: {step.what}" if step.what else self.title)
