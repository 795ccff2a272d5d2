"""The widget contributions: SlideScope's docks for a plain napari window."""

from __future__ import annotations

import napari
from qtpy.QtWidgets import QVBoxLayout, QWidget
from slidescope.app.ui.widgets.slides_panel import SlidesPanel as _SlidesPanel


class SlidesPanel(_SlidesPanel):
    """Plugins > SlideScope > Slides: slide list, overview, info and background work."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)


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
