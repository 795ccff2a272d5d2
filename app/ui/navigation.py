"""Where the view is on the slide: centre, zoom as a magnification, the minimap, the cursor.

napari's world is in µm (the slide layer's scale is its mpp), and its camera zoom is screen
pixels per world unit. A microscope's magnification is, by the usual convention, 10 µm over
the size of one screen pixel's footprint: 0.25 µm per screen pixel is 40×. So the
magnification on screen is ``10 × zoom``, and a preset sets the zoom to ``magnification / 10``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slidescope.app.analysis.trust import magnification
from slidescope.models.files import write_text_atomic

#: the objective presets a pathologist knows
PRESETS: tuple[int, ...] = (1, 5, 10, 20, 40)
VIEW_FILE = "view.json"


class Navigation:
    """The view of one viewer over the slide a session shows.

    Parameters
    ----------
    viewer : napari.Viewer
    session : SlideSession
        Whose ``current`` slide is navigated.
    """

    def __init__(self, viewer: Any, session: Any) -> None:
        self.viewer = viewer
        self.session = session

    def go_to(self, x: float, y: float) -> None:
        """Centre the view on level-0 ``(x, y)`` of the current slide."""
        shown = self.session.current
        if shown is not None:
            self.viewer.scene.camera.center = shown.data.space.to_world(x, y)

    def view_rect(self) -> tuple[float, float, float, float] | None:
        """The region on screen in level-0 pixels ``(x0, y0, x1, y1)``."""
        shown = self.session.current
        if shown is None:
            return None
        camera = self.viewer.scene.camera
        h, w = self.viewer.canvas.size
        cy, cx = camera.center[-2:]
        half_y, half_x = h / camera.zoom / 2, w / camera.zoom / 2
        space = shown.data.space
        x0, y0 = space.to_level0((cy - half_y, cx - half_x))
        x1, y1 = space.to_level0((cy + half_y, cx + half_x))
        return (x0, y0, x1, y1)

    # -- magnification -------------------------------------------------------------------

    def has_microns(self) -> bool:
        shown = self.session.current
        return shown is not None and shown.data.space.mpp is not None

    def magnification(self) -> float | None:
        """The magnification on screen (None without a slide in µm)."""
        if not self.has_microns():
            return None
        return 10.0 * float(self.viewer.scene.camera.zoom)

    def set_magnification(self, power: float) -> None:
        """Zoom to ``power``× about the centre of the view."""
        if self.has_microns():
            self.viewer.scene.camera.zoom = power / 10.0

    def magnification_text(self) -> str:
        """``"on screen 20×  |  scanned at 40× (0.25 µm/px)"`` or ``""`` without a slide."""
        shown = self.session.current
        if shown is None:
            return ""
        mpp = shown.data.space.mpp
        if mpp is None:
            return "no resolution in the file: no magnification"
        power = self.magnification() or 0.0
        shown_as = f"{power:.1f}×" if power < 9.95 else f"{power:.0f}×"
        return f"{shown_as}  |  scan {magnification(mpp[0]):.0f}× ({mpp[0]:.3g} µm/px)"

    # -- the cursor ----------------------------------------------------------------------

    def position_text(self, world: tuple[float, ...]) -> str:
        """``x 1,234  y 5,678 px  |  616.5, 2,834.2 µm`` for a world position on the slide."""
        shown = self.session.current
        if shown is None:
            return ""
        space = shown.data.space
        x, y = space.pixel_at(world)
        w, h = shown.slide.dimensions
        if not (0 <= x < w and 0 <= y < h):
            return ""
        text = f"x {x:,}  y {y:,} px"
        if space.mpp is not None:
            text += f"  |  {x * space.mpp[0]:,.1f}, {y * space.mpp[1]:,.1f} µm"
        return text

    # -- the view a project remembers ----------------------------------------------------

    def save_view(self, folder: Path) -> None:
        """Record the slide and view on screen in ``folder/view.json`` (a project's)."""
        shown = self.session.current
        if shown is None:
            return
        camera = self.viewer.scene.camera
        x, y = shown.data.space.to_level0(tuple(camera.center[-2:]))
        record = {"slide": str(shown.path), "x": x, "y": y, "zoom": float(camera.zoom)}
        write_text_atomic(Path(folder) / VIEW_FILE, json.dumps(record))

    @staticmethod
    def saved_view(folder: Path) -> dict[str, Any] | None:
        """The record :meth:`save_view` wrote, None when absent or unreadable."""
        try:
            record = json.loads((Path(folder) / VIEW_FILE).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "slide" in record else None

    def restore(self, record: dict[str, Any]) -> None:
        """Go back to a recorded view of the slide on screen."""
        if self.session.current is None:
            return
        self.viewer.scene.camera.zoom = float(record.get("zoom", self.viewer.scene.camera.zoom))
        self.go_to(float(record.get("x", 0.0)), float(record.get("y", 0.0)))
