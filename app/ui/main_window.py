"""The SlideScope desktop window: a napari viewer with SlideScope's name, menus and docks."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, QObject
from qtpy.QtGui import QAction, QIcon
from qtpy.QtWidgets import QApplication, QFileDialog, QLabel, QMenu
from slidescope.app.display.tile_cache import DEFAULT_CACHE_BYTES
from slidescope.app.errors import SlideScopeError
from slidescope.app.project.project import PROJECT_FILE, is_slide_path
from slidescope.app.ui.analysis_session import AnalysisSession
from slidescope.app.ui.slide_session import SlidePanels, SlideSession
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.analysis_dock import AnalysisDock
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.widgets.minimap import Minimap
from slidescope.app.ui.widgets.patch_gallery import PatchGallery
from slidescope.app.ui.widgets.prediction_panel import PredictionPanel
from slidescope.app.ui.widgets.slide_info import SlideInfo
from slidescope.app.ui.widgets.slide_list import SlideList
from slidescope.app.user_dirs import recent_files
from slidescope.resources import resource_path

TITLE = "SlideScope"
SLIDE_FILTER = (
    "Slides (*.svs *.tif *.tiff *.ndpi *.mrxs *.scn *.bif *.vms *.dcm *.zarr);;All files (*)"
)


class SlideScopeWindow:
    """The main window.

    Parameters
    ----------
    viewer : napari.Viewer, optional
        The viewer to dress up (a new one by default; tests pass ``make_napari_viewer()``).
    cache_bytes : int
        The tile cache's budget.
    open_slide : callable, optional
        ``path -> Slide``; :func:`slidescope.app.slides.open_slide` by default.
    show : bool
        Show the window (a new viewer only).
    checkpoint : Path, optional
        The checkpoint the analysis dock starts with (the bundled demo model by default).
    """

    def __init__(
        self,
        viewer: Any = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        open_slide: Callable[[Path], Any] | None = None,
        show: bool = True,
        checkpoint: Path | None = None,
    ) -> None:
        import napari

        self.viewer = viewer if viewer is not None else napari.Viewer(title=TITLE, show=show)
        self.viewer.title = TITLE
        self.qt_window = self.viewer.window._qt_window
        icon = QIcon(str(resource_path("icons/slidescope.svg")))
        self.qt_window.setWindowIcon(icon)
        app = QApplication.instance()
        if app is not None:
            app.setWindowIcon(icon)  # type: ignore[union-attr]
        self.panels = SlidePanels(
            slides=SlideList(), info=SlideInfo(), minimap=Minimap(), jobs=JobProgress()
        )
        self.session = SlideSession(self.viewer, self.panels, cache_bytes, open_slide)
        self.analysis_dock = AnalysisDock()
        self.prediction = PredictionPanel()
        self.gallery = PatchGallery()
        self.analysis = AnalysisSession(
            self.session, self.analysis_dock, self.prediction, self.gallery, checkpoint
        )
        self._add_docks()
        self.train = _train_dock(self)  # fine-tuning and the review queue (Train dock)
        self._add_menus()
        self._add_status()
        self._drops = _SlideDropFilter(weak_handler(self.drop_paths, False))
        qt_viewer = self.viewer.window._qt_viewer
        for widget in (qt_viewer, getattr(qt_viewer, "_welcome_widget", None)):
            if widget is not None:
                widget.installEventFilter(self._drops)
        # a weak reference: a strong one held by the Qt connection would keep the viewer alive
        self.qt_window.destroyed.connect(partial(_shutdown, weakref.ref(self.session)))

    # -- building ----------------------------------------------------------------------

    def _add_docks(self) -> None:
        self.panels.slides.add_slides_requested.connect(weak_slot(self.ask_open_slides))  # type: ignore[union-attr]
        self.panels.slides.add_folder_requested.connect(weak_slot(self.ask_add_folder))  # type: ignore[union-attr]
        for panel in (self.panels.minimap, self.panels.info, self.panels.jobs):
            panel.setMaximumWidth(360)  # type: ignore[union-attr]
        self.panels.minimap.setMaximumHeight(300)  # type: ignore[union-attr]
        add = self.viewer.window.add_dock_widget
        self.docks = {
            "slides": add(self.panels.slides, name="Slides", area="left"),
            "overview": add(self.panels.minimap, name="Overview", area="right"),
            "info": add(self.panels.info, name="Slide info", area="right"),
            "jobs": add(self.panels.jobs, name="Background work", area="right"),
            "analysis": add(self.analysis_dock, name="Analysis", area="right", tabify=True),
            "prediction": add(self.prediction, name="Prediction", area="left", tabify=True),
            "patches": add(self.gallery, name="Patches", area="left", tabify=True),
        }
        self.analysis_dock.choose_checkpoint.connect(weak_slot(self.ask_checkpoint))
        self.analysis_dock.export_requested.connect(weak_slot(self.ask_export))

    def _add_menus(self) -> None:
        menu: QMenu = self.viewer.window.file_menu
        first = menu.actions()[0] if menu.actions() else None
        self.actions: dict[str, QAction] = {}
        for key, text, slot, shortcut in (
            ("open_slide", "Open Slide...", self.ask_open_slides, "Ctrl+Shift+O"),
            ("open_project", "Open Project...", self.ask_open_project, None),
            ("new_project", "New Project...", self.ask_new_project, None),
            ("add_folder", "Add Folder of Slides...", self.ask_add_folder, None),
        ):
            action = QAction(text, self.qt_window)
            if shortcut:
                action.setShortcut(shortcut)
            action.triggered.connect(weak_slot(slot))
            menu.insertAction(first, action)
            self.actions[key] = action
        self.recent_menu = QMenu("Recent Files", self.qt_window)
        self.recent_menu.aboutToShow.connect(weak_slot(self._fill_recent))
        menu.insertMenu(first, self.recent_menu)
        menu.insertSeparator(first)

    def _add_status(self) -> None:
        self.position_label = QLabel("")
        self.position_label.setObjectName("slidescope-position")
        self.qt_window.statusBar().addPermanentWidget(self.position_label)
        self.viewer.cursor.events.position.connect(self._update_position)

    # -- actions -----------------------------------------------------------------------

    def open_slides(self, paths: Iterable[str | Path]) -> None:
        """Open slide files: listed, and the first one shown."""
        self.session.open_slides(paths)

    def open_project(self, folder: str | Path) -> None:
        """Open a project; an unreadable one gives an error notification."""
        try:
            self.session.open_project(folder)
        except SlideScopeError as error:
            show_error(str(error))

    def drop_paths(self, paths: list[str]) -> bool:
        """Open dropped files; False when they are not all slides or projects (napari's turn)."""
        projects = [
            p for p in paths if (Path(p) / PROJECT_FILE).exists() or Path(p).name == PROJECT_FILE
        ]
        slides = [p for p in paths if is_slide_path(p)]
        if not paths or len(projects) + len(slides) != len(paths):
            return False
        if projects:
            self.open_project(projects[0])
        if slides:
            self.open_slides(slides)
        return True

    def ask_open_slides(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.qt_window, "Open Slide", "", SLIDE_FILTER)
        if paths:
            self.open_slides(paths)

    def ask_open_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.qt_window, "Open Project")
        if folder:
            self.open_project(folder)

    def ask_new_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.qt_window, "New Project: choose a folder")
        if folder:
            try:
                self.session.new_project(folder)
            except SlideScopeError as error:
                show_error(str(error))

    def ask_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.qt_window, "Add a Folder of Slides")
        if folder:
            try:
                self.session.add_folder(folder)
            except SlideScopeError as error:
                show_error(str(error))

    def ask_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.qt_window, "Choose a checkpoint", "", "Checkpoints (*.safetensors)"
        )
        if path:
            self.analysis.set_checkpoint(path)

    def ask_export(self) -> None:
        project = self.session.project
        start = str(project.results_dir / "exports") if project else ""
        folder = QFileDialog.getExistingDirectory(self.qt_window, "Export heatmaps to", start)
        if folder:
            self.analysis.export(folder)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = recent_files()
        if not items:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for item in items:
            action = self.recent_menu.addAction(item)
            action.triggered.connect(weak_slot(self.open_recent, item))

    def open_recent(self, path: str) -> None:
        if (Path(path) / PROJECT_FILE).exists():
            self.open_project(path)
        else:
            self.open_slides([path])

    # -- status bar --------------------------------------------------------------------

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

    def _update_position(self, event: Any = None) -> None:
        self.position_label.setText(self.position_text(tuple(self.viewer.cursor.position)))


class _SlideDropFilter(QObject):
    """Catches drops of slide files so they open as SlideScope slides, not plain images."""

    def __init__(self, handler: Callable[[list[str]], bool]) -> None:
        super().__init__()
        self._handler = handler

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.Drop:
            mime = event.mimeData()  # type: ignore[attr-defined]
            paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime else []
            if paths and self._handler(paths):
                event.acceptProposedAction()  # type: ignore[attr-defined]
                return True
        return False


def _train_dock(window: SlideScopeWindow) -> Any:
    """The Train dock and its session, docked beside the analysis."""
    from slidescope.app.ui.train_session import TrainSession
    from slidescope.app.ui.widgets.train_dock import TrainDock

    dock = TrainDock()
    window.docks["train"] = window.viewer.window.add_dock_widget(
        dock, name="Train", area="right", tabify=True
    )
    return TrainSession(window.session, window.analysis, dock)


def _shutdown(session_ref: weakref.ref[SlideSession], *_: object) -> None:
    session = session_ref()
    if session is not None:
        session.shutdown()
