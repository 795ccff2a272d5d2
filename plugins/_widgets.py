"""The widget contributions: SlideScope's docks for a plain napari window."""

from __future__ import annotations

import napari
from slidescope.app.ui.widgets.slides_panel import SlidesPanel as _SlidesPanel


def SlidesPanel(viewer: napari.viewer.Viewer) -> _SlidesPanel:  # noqa: N802 - a widget
    """Plugins > SlideScope > Slides: slide list, overview, info and background work."""
    return _SlidesPanel(viewer)
