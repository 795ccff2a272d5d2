"""What a viewer does with slides: open, show one at a time, switch, close.

A :class:`SlideSession` shows one slide at a time in a napari viewer and keeps the SlideScope
panels (slide list, slide info, minimap, background jobs) up to date. It is made of three
parts with one job each: :class:`~slidescope.app.ui.background.BackgroundJobs` (the workers),
:class:`~slidescope.app.ui.slide_catalog.SlideCatalog` (the project and the slide list) and
:class:`~slidescope.app.ui.navigation.Navigation` (the view). The file is opened by the core
job :func:`~slidescope.app.display.open_job.open_slide_job` in a worker; the layer is added in
the UI thread once it is ready. Showing another slide closes the last one and drops its tiles
from the cache, so memory follows what is on screen. A slide layer added by the plugin's reader
(``viewer.open(path)``) is adopted: it becomes the session's current slide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error
from slidescope.app.display.open_job import open_slide_job
from slidescope.app.display.slide_layer import METADATA_KEY, SlideLayerData, slide_layer_data
from slidescope.app.display.tile_cache import DEFAULT_CACHE_BYTES, TileCache
from slidescope.app.jobs import Job
from slidescope.app.project.project import Project, is_slide_path
from slidescope.app.ui.background import BackgroundJobs
from slidescope.app.ui.napari_access import layers_changed_together
from slidescope.app.ui.navigation import Navigation
from slidescope.app.ui.slide_catalog import SlideCatalog
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.widgets.minimap import Minimap
from slidescope.app.ui.widgets.slide_info import SlideInfo
from slidescope.app.ui.widgets.slide_list import SlideList
from slidescope.app.ui.workers import describe_error
from slidescope.app.user_dirs import remember_recent


@dataclass
class ShownSlide:
    """The slide on screen: the open file, its layer and its cached levels."""

    slide: Any
    layer: Any
    data: SlideLayerData
    thumbnail: np.ndarray

    @property
    def path(self) -> Path:
        return Path(self.slide.path)


@dataclass
class SlidePanels:
    """The widgets a session keeps up to date (any may be absent)."""

    slides: SlideList | None = None
    info: SlideInfo | None = None
    minimap: Minimap | None = None
    jobs: JobProgress | None = None


class SlideSession:
    """Slides and the project shown in one napari viewer.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer to draw in.
    panels : SlidePanels
        The widgets to keep up to date.
    cache_bytes : int
        The tile cache's budget.
    open_slide : callable, optional
        ``path -> Slide``; :func:`slidescope.app.slides.open_slide` by default.
    """

    def __init__(
        self,
        viewer: Any,
        panels: SlidePanels,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        open_slide: Callable[[Path], Any] | None = None,
    ) -> None:
        self.viewer = viewer
        self.panels = panels
        self.cache = TileCache(cache_bytes)
        self.current: ShownSlide | None = None
        self.listeners: list[Callable[[ShownSlide | None], None]] = []
        self.jobs = BackgroundJobs(panels.jobs)
        self.catalog = SlideCatalog(self.jobs, panels.slides, open_slide)
        self.navigation = Navigation(viewer, self)
        self._opener = open_slide
        self._pending: Path | None = None
        self._restore: dict[str, Any] | None = None
        self._adding = False
        viewer.scene.camera.events.center.connect(self._update_minimap)
        viewer.scene.camera.events.zoom.connect(self._update_minimap)
        viewer.layers.events.removed.connect(self._layer_removed)
        viewer.layers.events.inserted.connect(self._layer_inserted)
        if panels.minimap is not None:
            panels.minimap.clicked.connect(weak_handler(self.go_to))
        if panels.slides is not None:
            panels.slides.slide_activated.connect(weak_handler(self.show_slide))
        self.catalog.refresh()
        self._adopt_open_slide()

    # -- what other parts read -------------------------------------------------------------

    @property
    def project(self) -> Project | None:
        return self.catalog.project

    @property
    def session_slides(self) -> list[Path]:
        return self.catalog.loose

    @property
    def busy(self) -> bool:
        """Whether background work is running."""
        return self.jobs.busy

    def run_in_background(self, job: Job[Any], title: str, **handlers: Any) -> Any:
        """Run a core job in a worker with a progress line (see :func:`start_job`)."""
        return self.jobs.run(job, title, **handlers)

    # -- opening -----------------------------------------------------------------------

    def open_slide(self, path: str | Path) -> Any:
        """Open a slide file with the configured opener (in the calling thread)."""
        if self._opener is not None:
            return self._opener(Path(path))
        from slidescope.app.slides import open_slide

        return open_slide(path)

    def open_slides(self, paths: Iterable[str | Path]) -> None:
        """Show the first of ``paths``; each slide that opens joins the list."""
        resolved = [Path(p).expanduser().resolve() for p in paths]
        for path in resolved[1:]:  # listed once they are known to open
            self.run_in_background(
                open_slide_job(path, self._opener, 16),
                f"Checking {path.name}",
                on_done=self._checked,
                on_error=lambda error, p=path: self._open_failed(p, error),
            )
        if resolved:
            self.show_slide(resolved[0])

    def _checked(self, result: tuple[Path, Any, np.ndarray]) -> None:
        path, slide, _ = result
        slide.close()
        self.catalog.add_opened(path)

    def show_slide(self, path: str | Path, layer: Any = None) -> Any:
        """Open ``path`` in the background and show it in place of the current slide.

        Returns the worker. A file that cannot be opened gives an error notification
        naming it and why, and is not listed; the current slide stays. ``layer``: a layer
        already showing the slide (the plugin reader's) to adopt instead of adding one.
        """
        path = Path(path).expanduser().resolve()
        self._pending = path
        return self.run_in_background(
            open_slide_job(path, self._opener),
            f"Opening {path.name}",
            on_done=lambda result: self._opened(result, layer),
            on_error=lambda error: self._open_failed(path, error),
        )

    def _opened(self, result: tuple[Path, Any, np.ndarray], adopt: Any = None) -> None:
        path, slide, thumbnail = result
        if path != self._pending:  # the user asked for another slide meanwhile
            slide.close()
            return
        self._pending = None
        try:
            data = slide_layer_data(slide, self.cache)
            self.close_slide(keep=adopt)
            self._adding = True  # our own layer: not one to adopt
            try:
                layer = (
                    adopt
                    if adopt is not None
                    else self.viewer.add_image(data.levels, **data.kwargs)
                )
            finally:
                self._adding = False
        except Exception as error:  # a broken level shows up only when napari reads it
            slide.close()
            self._open_failed(path, error)
            return
        # below the heatmaps and annotations that may already be there
        self.viewer.layers.move(self.viewer.layers.index(layer), 0)
        self.current = ShownSlide(slide=slide, layer=layer, data=data, thumbnail=thumbnail)
        # in µm with a slide on screen; none on an empty canvas (a bare number there)
        self.viewer.canvas.overlays.scale_bar.visible = True
        self.viewer.reset_view()
        restore, self._restore = self._restore, None
        if restore is not None and Path(restore["slide"]) == path:
            self.navigation.restore(restore)
        self.viewer.title = f"SlideScope - {slide.identity.slide_id}"
        remember_recent(path)
        self.catalog.add_opened(path)
        if self.panels.info is not None:
            self.panels.info.show_slide(slide)
        if self.panels.minimap is not None:
            w, h = slide.dimensions
            self.panels.minimap.set_slide(thumbnail, w, h)
            self._update_minimap()
        if self.panels.slides is not None:
            self.panels.slides.mark_current(str(path))
        for listener in list(self.listeners):
            listener(self.current)

    def _open_failed(self, path: Path, error: BaseException) -> None:
        if self._pending == path:
            self._pending = None
        text = describe_error(f"Cannot open {path.name}", error)
        if str(path) not in text:
            text = f"{text} ({path})"
        show_error(text)

    def close_slide(self, keep: Any = None) -> None:
        """Take the current slide off screen, close its file and free its tiles."""
        if self.current is None:
            return
        # its layer, its annotations' and its heatmaps' leave in one scene-graph update
        with layers_changed_together(self.viewer):
            self._close_slide(keep)

    def _close_slide(self, keep: Any) -> None:
        shown, self.current = self.current, None
        if shown is None:
            return
        if shown.layer in self.viewer.layers and shown.layer is not keep:
            self.viewer.layers.remove(shown.layer)
        shown.data.release()
        shown.slide.close()
        if self.panels.info is not None:
            self.panels.info.show_slide(None)
        if self.panels.minimap is not None:
            self.panels.minimap.set_slide(None, 1, 1)
        if self.panels.slides is not None:
            self.panels.slides.mark_current(None)
        self.viewer.title = "SlideScope"
        for listener in list(self.listeners):
            listener(None)  # the slide's annotations and heatmaps leave with it
        if not len(self.viewer.layers):
            self.viewer.canvas.overlays.scale_bar.visible = False

    def _layer_removed(self, event: Any) -> None:
        # the user deleted the slide's layer in napari's layer list: close it too
        if self.current is not None and event.value is self.current.layer:
            self.close_slide()

    def _layer_inserted(self, event: Any) -> None:
        # a slide the plugin's reader opened (viewer.open) becomes this session's slide
        layer = event.value
        if self._adding:
            return
        info = getattr(layer, "metadata", {}).get(METADATA_KEY)
        if not isinstance(info, dict) or "path" not in info or "identity" not in info:
            self._replace_flat_slide(layer)
            return
        if self.current is not None and layer is self.current.layer:
            return
        self.show_slide(info["path"], layer=layer)

    def _adopt_open_slide(self) -> None:
        """A slide the plugin's reader opened before SlideScope's first dock was added (open
        first, then Plugins > SlideScope) becomes the session's slide: the selected one, else
        the top one."""
        slides = [
            layer
            for layer in self.viewer.layers
            if isinstance(info := getattr(layer, "metadata", {}).get(METADATA_KEY), dict)
            and "path" in info
            and "identity" in info
        ]
        if not slides:
            return
        active = self.viewer.layers.selection.active
        layer = active if active in slides else slides[-1]
        self.show_slide(layer.metadata[METADATA_KEY]["path"], layer=layer)

    def _replace_flat_slide(self, layer: Any) -> None:
        """A slide file napari's built-in reader opened as one flat image in pixels (what
        ``viewer.open(path)`` does by default) is shown as SlideScope's multiscale slide in µm
        instead."""
        source = getattr(layer, "source", None)
        path = getattr(source, "path", None)
        if not path or getattr(source, "reader_plugin", None) != "napari":
            return
        if not is_slide_path(path) or getattr(layer, "multiscale", False):
            return
        from qtpy.QtCore import QTimer

        # not inside napari's insert (it still selects the layer): right after it
        QTimer.singleShot(0, weak_slot(self._swap_flat_slide, layer, path))

    def _swap_flat_slide(self, layer: Any, path: str) -> None:
        if layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        self.show_slide(path)

    # -- projects ----------------------------------------------------------------------

    def set_project(self, project: Project | None) -> None:
        """Show a project's slides (None: back to this session's loose slides)."""
        self.catalog.set_project(project)

    def open_project(self, folder: str | Path) -> Project:
        """Open the project in ``folder`` and show its last slide and view.

        Errors are raised for the caller to show.
        """
        self.save_view()
        project = Project.open(folder)
        self.set_project(project)
        record = Navigation.saved_view(project.folder)
        if record is not None and Path(record["slide"]).exists():
            self._restore = record
            self.show_slide(record["slide"])
        return project

    def save_view(self) -> None:
        """Remember the slide and view on screen in the open project."""
        if self.project is not None and self.current is not None:
            with contextlib.suppress(OSError):  # a read-only project still closes
                self.navigation.save_view(self.project.folder)

    def new_project(self, folder: str | Path) -> Project:
        """Create a project in ``folder``, with the slides of this session in it."""
        return self.catalog.new_project(folder)

    def add_folder(self, folder: str | Path) -> None:
        """Add every slide of a folder to the project (or to the session)."""
        self.catalog.add_folder(folder)

    def make_thumbnails(self) -> Any:
        return self.catalog.make_thumbnails()

    # -- navigation --------------------------------------------------------------------

    def go_to(self, x: float, y: float) -> None:
        """Centre the view on level-0 ``(x, y)`` of the current slide."""
        self.navigation.go_to(x, y)

    def view_rect(self) -> tuple[float, float, float, float] | None:
        """The region on screen in level-0 pixels ``(x0, y0, x1, y1)``."""
        return self.navigation.view_rect()

    def _update_minimap(self, _event: Any = None) -> None:
        rect = self.view_rect()
        if rect is not None and self.panels.minimap is not None:
            self.panels.minimap.set_view(*rect)

    # -- closing -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Cancel background work, remember the view and close the slide (the window closes)."""
        self.jobs.quit_all()
        try:
            self.save_view()
            self.close_slide()
        except RuntimeError:  # the viewer's Qt objects are already gone
            if self.current is not None:
                self.current.slide.close()
