"""What the window does with slides: open, show one at a time, switch, close; the project.

A :class:`SlideSession` drives a napari viewer and the SlideScope panels (slide list, slide
info, minimap, background jobs). The desktop window and the plugin's dock widget both use
it. Opening runs in a background worker (parsing a big file and reading its thumbnail take
time); the layer is added in the UI thread when it is ready. Showing another slide closes
the last one and drops its tiles from the cache, so memory follows what is on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error
from slidescope.app.display.slide_layer import SlideLayerData, slide_layer_data
from slidescope.app.display.tile_cache import DEFAULT_CACHE_BYTES, TileCache
from slidescope.app.jobs import Job, Progress
from slidescope.app.project.project import Project, is_slide_path
from slidescope.app.project.thumbnails import make_thumbnails
from slidescope.app.ui.weak_slots import weak_handler
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.widgets.minimap import Minimap
from slidescope.app.ui.widgets.slide_info import SlideInfo
from slidescope.app.ui.widgets.slide_list import SlideList
from slidescope.app.ui.workers import describe_error, start_job
from slidescope.app.user_dirs import remember_recent

MINIMAP_SIZE = 384


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
        self.project: Project | None = None
        self.session_slides: list[Path] = []
        self.listeners: list[Callable[[ShownSlide | None], None]] = []
        self._opener = open_slide
        self._pending: Path | None = None
        self._workers: list[Any] = []
        viewer.canvas.overlays.scale_bar.visible = True
        viewer.scene.camera.events.center.connect(self._update_minimap)
        viewer.scene.camera.events.zoom.connect(self._update_minimap)
        viewer.layers.events.removed.connect(self._layer_removed)
        if panels.minimap is not None:
            panels.minimap.clicked.connect(weak_handler(self.go_to))
        if panels.slides is not None:
            panels.slides.slide_activated.connect(weak_handler(self.show_slide))
            panels.slides.show_project(None, self.session_slides)

    # -- opening -----------------------------------------------------------------------

    def open_slide(self, path: str | Path) -> Any:
        """Open a slide file with the configured opener (in the calling thread)."""
        if self._opener is not None:
            return self._opener(Path(path))
        from slidescope.app.slides import open_slide

        return open_slide(path)

    def open_slides(self, paths: Iterable[str | Path]) -> None:
        """Put slides on the list (the project's, or this session's) and show the first."""
        paths = [Path(p).expanduser().resolve() for p in paths]
        if not paths:
            return
        for path in paths:
            if self.project is not None and path.exists():
                self.project.add_slide(path)
            elif path not in self.session_slides:
                self.session_slides.append(path)
        if self.project is not None:
            self.project.save()
            self.make_thumbnails()
        self._refresh_list()
        self.show_slide(paths[0])

    def show_slide(self, path: str | Path) -> Any:
        """Open ``path`` in the background and show it in place of the current slide.

        Returns the worker. A file that cannot be opened gives an error notification
        naming it and why; the current slide stays.
        """
        path = Path(path).expanduser().resolve()
        self._pending = path
        return self.run_in_background(
            self._open_job(path),
            f"Opening {path.name}",
            on_done=self._opened,
            on_error=lambda error: self._open_failed(path, error),
        )

    def _open_job(self, path: Path) -> Job[tuple[Path, Any, np.ndarray]]:
        yield Progress(0, 2, "reading the file")
        slide = self.open_slide(path)
        try:
            yield Progress(1, 2, "reading the overview")
            thumbnail = slide.thumbnail(MINIMAP_SIZE)
            yield Progress(2, 2, "ready")
        except BaseException:
            slide.close()
            raise
        return path, slide, thumbnail

    def _opened(self, result: tuple[Path, Any, np.ndarray]) -> None:
        path, slide, thumbnail = result
        if path != self._pending:  # the user asked for another slide meanwhile
            slide.close()
            return
        self._pending = None
        try:
            data = slide_layer_data(slide, self.cache)
            self.close_slide()
            layer = self.viewer.add_image(data.levels, **data.kwargs)
        except Exception as error:  # a broken level shows up only when napari reads it
            slide.close()
            self._open_failed(path, error)
            return
        # below the heatmaps and annotations that may already be there
        self.viewer.layers.move(self.viewer.layers.index(layer), 0)
        self.current = ShownSlide(slide=slide, layer=layer, data=data, thumbnail=thumbnail)
        self.viewer.reset_view()
        self.viewer.title = f"SlideScope - {slide.identity.slide_id}"
        remember_recent(path)
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

    def close_slide(self) -> None:
        """Take the current slide off screen, close its file and free its tiles."""
        shown, self.current = self.current, None
        if shown is None:
            return
        if shown.layer in self.viewer.layers:
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
            listener(None)

    def _layer_removed(self, event: Any) -> None:
        # the user deleted the slide's layer in napari's layer list: close it too
        if self.current is not None and event.value is self.current.layer:
            self.close_slide()

    # -- projects ----------------------------------------------------------------------

    def set_project(self, project: Project | None) -> None:
        """Show a project's slides (None: back to this session's loose slides)."""
        self.project = project
        if project is not None:
            remember_recent(project.folder)
            self.make_thumbnails()
        self._refresh_list()

    def open_project(self, folder: str | Path) -> Project:
        """Open the project in ``folder`` (errors are raised for the caller to show)."""
        project = Project.open(folder)
        self.set_project(project)
        return project

    def new_project(self, folder: str | Path) -> Project:
        """Create a project in ``folder``, with the slides of this session in it."""
        project = Project.create(folder)
        for path in self.session_slides:
            if path.exists():
                project.add_slide(path)
        project.save()
        self.set_project(project)
        return project

    def add_folder(self, folder: str | Path) -> None:
        """Add every slide of a folder to the project (or to the session)."""
        if self.project is not None:
            self.project.add_folder(folder)
            self.project.save()
            self.make_thumbnails()
        else:
            found = sorted(p for p in Path(folder).iterdir() if is_slide_path(p))
            self.session_slides.extend(p.resolve() for p in found if p not in self.session_slides)
        self._refresh_list()

    def make_thumbnails(self) -> Any:
        """Fill missing thumbnails and identities in the background; the list follows."""
        if self.project is None:
            return None
        return self.run_in_background(
            make_thumbnails(self.project, self._opener),
            "Project thumbnails",
            on_done=lambda _failed: self._refresh_list(),
        )

    def _refresh_list(self) -> None:
        if self.panels.slides is not None:
            self.panels.slides.show_project(self.project, self.session_slides)

    # -- navigation --------------------------------------------------------------------

    def go_to(self, x: float, y: float) -> None:
        """Centre the view on level-0 ``(x, y)`` of the current slide."""
        if self.current is None:
            return
        self.viewer.scene.camera.center = self.current.data.space.to_world(x, y)

    def view_rect(self) -> tuple[float, float, float, float] | None:
        """The region on screen in level-0 pixels ``(x0, y0, x1, y1)``."""
        if self.current is None:
            return None
        camera = self.viewer.scene.camera
        h, w = self.viewer.canvas.size
        cy, cx = camera.center[-2:]
        half_y, half_x = h / camera.zoom / 2, w / camera.zoom / 2
        space = self.current.data.space
        x0, y0 = space.to_level0((cy - half_y, cx - half_x))
        x1, y1 = space.to_level0((cy + half_y, cx + half_x))
        return (x0, y0, x1, y1)

    def _update_minimap(self, _event: Any = None) -> None:
        rect = self.view_rect()
        if rect is not None and self.panels.minimap is not None:
            self.panels.minimap.set_view(*rect)

    # -- jobs --------------------------------------------------------------------------

    def run_in_background(self, job: Job[Any], title: str, **handlers: Any) -> Any:
        """Run a core job in a worker with a progress line (see :func:`start_job`)."""
        box: list[Any] = []  # the worker, for the callback made before it exists
        worker = start_job(
            job,
            title,
            self.panels.jobs,
            on_finished=lambda: self._workers.remove(box[0]),
            **handlers,
        )
        box.append(worker)
        self._workers.append(worker)
        return worker

    @property
    def busy(self) -> bool:
        """Whether background work is running."""
        return bool(self._workers)

    def shutdown(self) -> None:
        """Cancel background work and close the slide (the window is closing)."""
        for worker in list(self._workers):
            worker.quit()
        try:
            self.close_slide()
        except RuntimeError:  # the viewer's Qt objects are already gone
            if self.current is not None:
                self.current.slide.close()
