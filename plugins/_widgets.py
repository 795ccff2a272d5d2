"""The widget contributions: SlideScope's docks for a plain napari window."""

from __future__ import annotations

import napari
from slidescope.app.ui.widgets.slides_panel import SlidesPanel as _SlidesPanel


class SlidesPanel(_SlidesPanel):
    """Plugins > SlideScope > Slides: slide list, overview, info and background work."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
