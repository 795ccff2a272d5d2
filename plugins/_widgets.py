"""The widget contributions: SlideScope's docks for a napari window.

Every dock works on the viewer's one SlideScope session (:mod:`slidescope.app.ui.viewer_sessions`):
inside the SlideScope window that is the window's own; in plain napari the first dock makes it,
and the others (and slides the plugin's reader opens) join it.
"""

from __future__ import annotations

from typing import Any

import napari
from qtpy.QtWidgets import QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget
from slidescope.app.ui.analysis_session import AnalysisSession
from slidescope.app.ui.napari_access import canvas_widget
from slidescope.app.ui.viewer_sessions import ViewerSession, register, session_of
from slidescope.app.ui.widgets.analysis_dock import AnalysisDock
from slidescope.app.ui.widgets.canvas_overlays import CanvasOverlays
from slidescope.app.ui.widgets.patch_gallery import PatchGallery
from slidescope.app.ui.widgets.prediction_panel import PredictionPanel
from slidescope.app.ui.widgets.slides_panel import SlidesPanel as _SlidesPanel
from slidescope.plugins._preferences import ensure_reader_preference


def _window_note(layout: QVBoxLayout, window: Any, key: str, title: str) -> None:
    """Inside the SlideScope window: point at its own dock instead of a second session."""
    layout.addWidget(QLabel(f"SlideScope's window has its own {title} dock."))
    button = QPushButton(f"Show the {title} dock")
    button.clicked.connect(lambda: (window.docks[key].show(), window.docks[key].raise_()))
    layout.addWidget(button)
    layout.addStretch(1)


class SlidesPanel(QWidget):
    """Plugins > SlideScope > Slides: slide list, overview, info and background work."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        ensure_reader_preference()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        shared = session_of(napari_viewer)
        if shared is not None and shared.window is not None:
            self.session, self.panels = shared.slides, shared.slides.panels
            _window_note(layout, shared.window, "slides", "Slides")
            return
        if shared is not None and shared.panel is not None:
            inner = shared.panel  # made by the Analysis dock, which came first
            inner.show()
        else:
            inner = _SlidesPanel(napari_viewer)
            shared = register(napari_viewer, ViewerSession(inner.session, panel=inner))
        self._shared = shared
        self.session, self.panels = inner.session, inner.panels
        layout.addWidget(inner)


class AnalysisPanel(QWidget):
    """Plugins > SlideScope > Analysis: run the model on the slide shown, heatmaps, prediction,
    the trust flag and the patch gallery."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        ensure_reader_preference()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        shared = session_of(napari_viewer)
        if shared is not None and shared.window is not None:
            self.analysis = shared.analysis
            _window_note(layout, shared.window, "analysis", "Analysis")
            return
        if shared is None:
            slides = _SlidesPanel(napari_viewer)  # the session the plugin's slides join
            slides.hide()
            self._slides = slides
            shared = register(napari_viewer, ViewerSession(slides.session, panel=slides))
        self._shared = shared
        self.dock = AnalysisDock()
        self.prediction = PredictionPanel()
        self.gallery = PatchGallery()
        overlays = CanvasOverlays(canvas_widget(napari_viewer))
        self.analysis = AnalysisSession(
            shared.slides, self.dock, self.prediction, self.gallery, overlays=overlays
        )
        shared.analysis = self.analysis
        tabs = QTabWidget()
        tabs.addTab(self.dock, "Analysis")
        tabs.addTab(self.gallery, "Patches")
        layout.addWidget(self.prediction)
        layout.addWidget(tabs, 1)
        if shared.slides.panels.jobs is not None and not shared.slides.panels.jobs.isVisible():
            layout.addWidget(shared.slides.panels.jobs)


class AnnotationsPanel(QWidget):
    """Plugins > SlideScope > Annotations: the desktop window's Annotations dock, for the
    slide the plugin opened (saved in the user data folder, keyed by the slide)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        from slidescope.app.ui.annotation_session import AnnotationSession
        from slidescope.app.ui.widgets.annotations_dock import AnnotationsDock
        from slidescope.plugins._annotations import ViewerSlides

        self.dock = AnnotationsDock()
        self.slides = ViewerSlides(napari_viewer)
        self.session = AnnotationSession(self.slides, self.dock)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.dock)
        self.slides._layers_changed()  # a slide already open
        self.destroyed.connect(self.session.flush)
