"""The SlideScope desktop window: a napari viewer with SlideScope's name, menus and docks."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from napari.utils.notifications import (
    NotificationSeverity,
    notification_manager,
    show_error,
    show_warning,
)
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtGui import QIcon
from qtpy.QtWidgets import QApplication, QFileDialog, QLabel, QWidget
from slidescope.app.display.tile_cache import DEFAULT_CACHE_BYTES
from slidescope.app.errors import SlideScopeError
from slidescope.app.project.project import PROJECT_FILE, is_slide_path
from slidescope.app.settings import Settings, load_settings
from slidescope.app.ui.analysis_session import AnalysisSession
from slidescope.app.ui.annotation_session import AnnotationSession
from slidescope.app.ui.docks import add_docks, size_columns, tabify_docks
from slidescope.app.ui.menus import add_file_actions, add_navigate_menu
from slidescope.app.ui.napari_access import (
    canvas_widget,
    hide_welcome_screen,
    layer_docks,
    qt_viewer,
    qt_window,
    welcome_widget,
)
from slidescope.app.ui.remembered_layout import RememberedLayout
from slidescope.app.ui.screen import fit_to_screen
from slidescope.app.ui.slide_session import SlidePanels, SlideSession
from slidescope.app.ui.train_session import TrainSession
from slidescope.app.ui.viewer_sessions import ViewerSession, register
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.analysis_dock import AnalysisDock
from slidescope.app.ui.widgets.annotations_dock import AnnotationsDock
from slidescope.app.ui.widgets.canvas_overlays import CanvasOverlays
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.widgets.minimap import Minimap
from slidescope.app.ui.widgets.patch_gallery import PatchGallery
from slidescope.app.ui.widgets.prediction_panel import PredictionPanel
from slidescope.app.ui.widgets.slide_info import SlideInfo
from slidescope.app.ui.widgets.slide_list import SlideList
from slidescope.app.ui.widgets.start_page import StartPage
from slidescope.app.ui.widgets.train_dock import TrainDock
from slidescope.app.user_dirs import recent_files, user_cache_dir
from slidescope.resources import resource_path
from superqt import ensure_main_thread

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

        made = viewer is None
        # the desktop app remembers its layout and checkpoint; a borrowed viewer does not
        settings, settings_warning = load_settings() if made else (Settings(), None)
        if checkpoint is None and settings.last_checkpoint:
            remembered = Path(settings.last_checkpoint)
            checkpoint = remembered if remembered.is_file() else None
        self.viewer = viewer if viewer is not None else napari.Viewer(title=TITLE, show=show)
        self.viewer.title = TITLE
        self.qt_window = qt_window(self.viewer)
        icon = QIcon(str(resource_path("icons/slidescope.svg")))
        self.qt_window.setWindowIcon(icon)
        app = QApplication.instance()
        if app is not None:
            app.setWindowIcon(icon)  # type: ignore[union-attr]
        self.overlays = CanvasOverlays(canvas_widget(self.viewer))
        self.panels = SlidePanels(
            slides=SlideList(), info=SlideInfo(), minimap=Minimap(), jobs=JobProgress(compact=True)
        )
        self.session = SlideSession(self.viewer, self.panels, cache_bytes, open_slide)
        self.analysis_dock = AnalysisDock()
        self.prediction = PredictionPanel()
        self.gallery = PatchGallery()
        self.analysis = AnalysisSession(
            self.session, self.analysis_dock, self.prediction, self.gallery, checkpoint,
            self.overlays,
        )  # fmt: skip
        self.viewer_session = register(
            self.viewer, ViewerSession(self.session, self.analysis, window=self)
        )
        # annotations: the dock and the session that follows the shown slide
        self.annotations_dock = AnnotationsDock()
        self.annotation = AnnotationSession(self.session, self.annotations_dock)
        # fine-tuning and the review queue
        self.train_dock = TrainDock()
        fit_to_screen(self.qt_window, fill=made)
        # a saved layout places the docks itself; tabs are made after it (tabify_docks)
        restoring = made and bool(settings.window_state)
        self.docks = add_docks(self, tabify=not restoring)
        self.panels.slides.add_slides_requested.connect(weak_slot(self.ask_open_slides))  # type: ignore[union-attr]
        self.panels.slides.add_folder_requested.connect(weak_slot(self.ask_add_folder))  # type: ignore[union-attr]
        self.analysis_dock.choose_checkpoint.connect(weak_slot(self.ask_checkpoint))
        self.analysis_dock.export_requested.connect(weak_slot(self.ask_export))
        for dock in layer_docks(self.viewer):  # collapsed: the Window menu brings them back
            dock.setVisible(False)
        size_columns(self, self.docks)
        QTimer.singleShot(0, weak_slot(self._lay_out))  # again once the window is shown
        self.train = TrainSession(self.session, self.analysis, self.train_dock)
        self.actions = add_file_actions(self)
        self.actions.update(add_navigate_menu(self))
        self.remembered = RememberedLayout(self, settings) if made else None
        if restoring and self.remembered is not None:
            tabify_docks(self, self.docks, placed=self.remembered.placed)
        if settings_warning:
            show_warning(settings_warning)
        self._add_status()
        self._add_start_page()
        # errors are shown whole on the canvas too (napari's toast is one elided line)
        notification_manager.notification_ready.connect(weak_handler(self._notified))
        self._drops = _SlideDropFilter(weak_handler(self.drop_paths, False))
        for widget in (qt_viewer(self.viewer), welcome_widget(self.viewer)):
            if widget is not None:
                widget.installEventFilter(self._drops)
        # a weak reference: a strong one held by the Qt connection would keep the viewer alive
        self.qt_window.destroyed.connect(partial(_shutdown, weakref.ref(self.session)))

    # -- building ----------------------------------------------------------------------

    def _lay_out(self) -> None:
        # a restored layout keeps its columns' sizes (the user's); a new one gets ours
        restored = self.remembered is not None and bool(self.remembered.placed)
        size_columns(self, self.docks, resize=not restored)

    def _add_status(self) -> None:
        bar = self.qt_window.statusBar()
        # napari's own cursor read-out is in (y, x) order and per layer: ours replaces it
        napari_coordinates = bar.findChild(QWidget, "coordinates status")
        if napari_coordinates is not None:  # napari shows it again on each move: no width
            napari_coordinates.setFixedWidth(0)
            napari_coordinates.setVisible(False)
        self.position_label = QLabel("")
        self.position_label.setObjectName("slidescope-position")
        self.magnification_label = QLabel("")
        self.magnification_label.setObjectName("slidescope-magnification")
        self.magnification_label.setToolTip(
            "Magnification on screen | of the scan (Navigate menu: Alt+1..5)"
        )
        bar.addPermanentWidget(self.panels.jobs)  # type: ignore[arg-type]
        bar.addPermanentWidget(self.position_label)
        bar.addPermanentWidget(self.magnification_label)
        self.viewer.cursor.events.position.connect(self._update_position)
        self.viewer.scene.camera.events.zoom.connect(self._update_magnification)
        self.session.listeners.append(weak_handler(self._slide_changed))

    def _add_start_page(self) -> None:
        hide_welcome_screen(self.viewer)
        self.start_page = StartPage(canvas_widget(self.viewer))
        self.start_page.open_slide.connect(weak_slot(self.ask_open_slides))
        self.start_page.open_project.connect(weak_slot(self.ask_open_project))
        self.start_page.demo.connect(weak_slot(self.run_demo))
        self.start_page.recent_chosen.connect(weak_handler(self.open_recent))
        self.start_page.show_recent(recent_files())
        self.start_page.place()
        self.start_page.show()  # a child made after its parent was shown starts hidden

    def _slide_changed(self, shown: Any) -> None:
        self.start_page.setVisible(shown is None and not self.session.busy)
        self.position_label.setText("")  # the last slide's coordinates mean nothing here
        self._update_magnification()
        if shown is None:
            self.start_page.show_recent(recent_files())
            self.start_page.place()

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
        if paths and all(p.lower().endswith((".geojson", ".json")) for p in paths):
            self.annotation.import_files(list(paths))  # QuPath annotations onto the slide
            return True
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

    # -- navigation and status bar --------------------------------------------------------

    def set_magnification(self, power: float) -> None:
        """Show the slide at ``power``× (1×, 5×, 10×, 20×, 40×: Alt+1..Alt+5)."""
        self.session.navigation.set_magnification(power)

    def fit_slide(self) -> None:
        self.viewer.reset_view()

    def step_hotspot(self, step: int) -> None:
        """Next (1) or previous (-1) hotspot of the heatmap shown (F3 / Shift+F3)."""
        self.analysis.next_hotspot(step)

    def run_demo(self) -> None:
        from slidescope.app.ui.demo_window import start_demo

        start_demo(self, user_cache_dir() / "demo")

    def position_text(self, world: tuple[float, ...]) -> str:
        """``x 1,234  y 5,678 px  |  616.5, 2,834.2 µm`` for a world position on the slide."""
        return self.session.navigation.position_text(world)

    @ensure_main_thread
    def _notified(self, notification: Any) -> None:
        if getattr(notification, "severity", None) == NotificationSeverity.ERROR:
            self.overlays.error.show_error(str(notification.message))

    def legend_titles(self) -> list[str]:
        """The titles of the colour keys on the canvas, top layer first."""
        return self.overlays.colorbar.titles

    def _update_position(self, event: Any = None) -> None:
        self.position_label.setText(self.position_text(tuple(self.viewer.cursor.position)))

    def _update_magnification(self, event: Any = None) -> None:
        self.magnification_label.setText(self.session.navigation.magnification_text())


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


def _shutdown(session_ref: weakref.ref[SlideSession], *_: object) -> None:
    session = session_ref()
    if session is not None:
        session.shutdown()
