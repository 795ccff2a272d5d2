"""All of SlideScope's slide panels in one dock, for napari users of the plugin."""

from __future__ import annotations

import weakref
from functools import partial
from typing import Any

from qtpy.QtWidgets import QFileDialog, QTabWidget, QVBoxLayout, QWidget
from slidescope.app.ui.slide_session import SlidePanels, SlideSession
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.widgets.minimap import Minimap
from slidescope.app.ui.widgets.slide_info import SlideInfo
from slidescope.app.ui.widgets.slide_list import SlideList


class SlidesPanel(QWidget):
    """Slide list, overview, slide info and background work, driving a :class:`SlideSession`."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("slidescope-panel")
        self.panels = SlidePanels(
            slides=SlideList(), info=SlideInfo(), minimap=Minimap(), jobs=JobProgress()
        )
        self.session = SlideSession(viewer, self.panels)
        self.panels.slides.add_slides_requested.connect(self._ask_slides)  # type: ignore[union-attr]
        self.panels.slides.add_folder_requested.connect(self._ask_folder)  # type: ignore[union-attr]
        tabs = QTabWidget()
        tabs.addTab(self.panels.slides, "Slides")
        tabs.addTab(self.panels.info, "Info")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.panels.minimap, 1)
        layout.addWidget(tabs, 2)
        layout.addWidget(self.panels.jobs)
        # a weak reference: a strong one held by the Qt connection would keep the viewer alive
        self.destroyed.connect(partial(_shutdown, weakref.ref(self.session)))

    def _ask_slides(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add slides")
        if paths:
            self.session.open_slides(paths)

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of slides")
        if folder:
            self.session.add_folder(folder)


def _shutdown(session_ref: weakref.ref[SlideSession], *_: object) -> None:
    session = session_ref()
    if session is not None:
        session.shutdown()
