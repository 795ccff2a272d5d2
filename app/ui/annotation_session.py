"""The window's annotations: load with each slide, edit, autosave off the UI thread.

When a slide is shown, its annotations are loaded from the project
(``annotations/<slide_id>.geojson``) or, for a slide opened alone, from the user data
folder, and shown as an :class:`AnnotationLayer`. Every edit starts (if not already
running) a one-shot timer of :data:`AUTOSAVE_DELAY_S`; when it fires, a snapshot of the
annotations is written in a napari ``thread_worker``, so the window never waits for the
disk. Switching slides and closing the window save at once (synchronously, after any
save in flight: one lock orders the writes so an older snapshot never lands last).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QInputDialog
from slidescope.app.annotations.annotation_io import new_annotations
from slidescope.app.annotations.classes import DEFAULT_CLASSES, PathClass, merge_classes
from slidescope.app.annotations.geojson import read_annotations, write_annotations
from slidescope.app.annotations.model import AnnotationSet, Change, annotation_kinds
from slidescope.app.annotations.store import AUTOSAVE_DELAY_S, AnnotationStore
from slidescope.app.display.placement import SlideSpace
from slidescope.app.errors import SlideScopeError
from slidescope.app.ui.annotation_layer import AnnotationLayer
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.annotations_dock import AnnotationsDock, TableRow

GEOJSON_FILTER = "GeoJSON (*.geojson *.json);;All files (*)"


class AnnotationSession:
    """Annotations of the slide on screen, in a :class:`SlideSession`'s viewer.

    Parameters
    ----------
    slides : SlideSession
        Tells which slide is shown (its ``listeners``) and which project is open.
    dock : AnnotationsDock
        The controls.
    """

    def __init__(self, slides: Any, dock: AnnotationsDock) -> None:
        self.slides = slides
        self.viewer = slides.viewer
        self.dock = dock
        self.store: AnnotationStore | None = None
        self.annotations: AnnotationSet | None = None
        self.view: AnnotationLayer | None = None
        self.hidden: set[str] = set()
        self._save_lock = threading.Lock()
        self._saving = False
        self._worker: Any = None
        # timers live and die with the dock (no refresh after its widgets are gone)
        self._save_timer = QTimer(dock)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(int(AUTOSAVE_DELAY_S * 1000))
        self._save_timer.timeout.connect(weak_slot(self.autosave))
        self._table_timer = QTimer(dock)
        self._table_timer.setSingleShot(True)
        self._table_timer.setInterval(50)  # one table refresh for a burst of edits
        self._table_timer.timeout.connect(weak_slot(self.refresh_table))
        slides.listeners.append(weak_handler(self._slide_changed))
        self._connect_dock()
        self.dock.set_classes(self.classes, self.active_class, self.hidden)

    # -- classes -----------------------------------------------------------------------

    @property
    def classes(self) -> list[PathClass]:
        project = self.slides.project
        if project is not None:
            return project.classes
        return self.view.classes if self.view is not None else list(DEFAULT_CLASSES)

    @property
    def active_class(self) -> str | None:
        if self.view is not None:
            return self.view.active_class
        return self.classes[0].name if self.classes else None

    # -- slide switch ------------------------------------------------------------------

    def _slide_changed(self, shown: Any) -> None:
        self.close_annotations()
        if shown is None:
            return
        slide = shown.slide
        identity = slide.identity.to_dict()
        project = self.slides.project
        entry = project.find(slide.path) if project is not None else None
        if entry is not None:
            self.store = AnnotationStore.for_project(project, entry.slide_id)
            self.store.slide_identity = identity
        else:
            self.store = AnnotationStore.for_slide(identity, self.classes)
        try:
            self.annotations = self.store.load(slide_dimensions=tuple(slide.dimensions))
        except SlideScopeError as error:
            show_error(f"Annotations not opened: {error}")
            self.store, self.annotations = None, None
            return
        if self.store.warning:
            show_warning(self.store.warning)
        elif self.store.report is not None and self.store.report.changed_anything:
            show_info(self.store.report.summary())
        width, height = slide.dimensions
        self.view = AnnotationLayer(
            self.viewer,
            self.annotations,
            SlideSpace.of(slide),
            self.classes,
            edge_width=max(2.0, max(width, height) / 500),  # visible at the overview zoom
        )
        self.view.hidden = set(self.hidden)
        self.annotations.changed.connect(self._on_change)
        self._bind_keys(self.view.layer)
        self.viewer.layers.selection.active = shown.layer
        self.dock.set_classes(self.classes, self.active_class, self.hidden)
        self.refresh_table()

    def close_annotations(self) -> None:
        """Save now and take the annotation layer down (slide switch, window close)."""
        if self.annotations is None:
            return
        self.flush()
        self.annotations.changed.disconnect(self._on_change)
        if self.view is not None:
            with contextlib.suppress(RuntimeError):  # Qt objects already gone at shutdown
                self.view.close()
        self.view, self.annotations, self.store = None, None, None
        with contextlib.suppress(RuntimeError):
            self.dock.set_table([])

    # -- saving ------------------------------------------------------------------------

    def _on_change(self, _change: Change) -> None:
        if not self._save_timer.isActive():
            self._save_timer.start()  # not restarted by later edits: saved within the delay
        self._table_timer.start()

    def autosave(self) -> Any:
        """Write a snapshot in a background thread (a second call waits for the first)."""
        if self.annotations is None or self.store is None or self.store.is_saved(self.annotations):
            return None
        if self._saving:
            self._save_timer.start()  # one save at a time; try again shortly
            return None
        snapshot, revision, store = (
            self.annotations.snapshot(),
            self.annotations.revision,
            self.store,
        )
        lock = self._save_lock

        @thread_worker
        def save() -> None:
            with lock:
                store.save(snapshot, revision=revision)

        self._saving = True
        worker = save()
        worker.finished.connect(weak_slot(self._saved))
        worker.errored.connect(lambda error: show_error(f"Annotations not saved: {error}"))
        worker.start()
        self._worker = worker
        return worker

    def _saved(self) -> None:
        self._saving = False
        self._worker = None
        if (
            self.annotations is not None
            and self.store is not None
            and not self.store.is_saved(self.annotations)
        ):
            self._save_timer.start()

    def flush(self) -> None:
        """Save now in this thread, after any save in flight."""
        self._save_timer.stop()
        if self.annotations is None or self.store is None:
            return
        with self._save_lock:
            if not self.store.is_saved(self.annotations):
                try:
                    self.store.save(self.annotations)
                except OSError as error:
                    show_error(f"Annotations not saved to {self.store.path}: {error}")

    # -- dock --------------------------------------------------------------------------

    def _connect_dock(self) -> None:
        d = self.dock
        d.tool_chosen.connect(weak_handler(self.set_tool))
        d.class_chosen.connect(weak_handler(self.choose_class))
        d.class_visibility.connect(weak_handler(self.set_class_visible))
        d.class_color.connect(weak_handler(self.set_class_color))
        d.lock_requested.connect(weak_handler(self.lock_selected))
        d.delete_requested.connect(weak_slot(self.delete_selected))
        d.undo_requested.connect(weak_slot(self.undo))
        d.redo_requested.connect(weak_slot(self.redo))
        d.brush_size.connect(weak_handler(self._brush_size))
        d.row_clicked.connect(weak_handler(self.go_to_annotation))
        d.import_requested.connect(weak_slot(self.ask_import))
        d.export_requested.connect(weak_slot(self.ask_export))

    def set_tool(self, tool: str) -> None:
        if self.view is not None:
            self.view.set_tool(tool)
        self.dock.set_tool(tool)

    def choose_class(self, name: str) -> None:
        """Make ``name`` the class of new shapes, and give it to the selection."""
        if self.view is None or self.annotations is None:
            return
        self.view.set_active_class(name)
        self.dock.set_active_class(name)
        selected = self.view.selected_ids()
        if selected:
            self.annotations.set_class(selected, name)
            self.view.select_ids(selected)

    def class_by_number(self, number: int) -> None:
        if 1 <= number <= len(self.classes):
            self.choose_class(self.classes[number - 1].name)

    def set_class_visible(self, name: str, visible: bool) -> None:
        (self.hidden.discard if visible else self.hidden.add)(name)
        if self.view is not None:
            self.view.set_hidden(self.hidden)

    def set_class_color(self, name: str, color: tuple[int, int, int]) -> None:
        project = self.slides.project
        classes = [PathClass(c.name, color) if c.name == name else c for c in self.classes]
        if project is not None:
            project.set_class(name, color)
            project.save()
        if self.view is not None:
            self.view.set_classes(classes)
        if self.store is not None:
            self.store.classes = classes
        self.dock.set_classes(classes, self.active_class, self.hidden)
        self.refresh_table()  # the rows' swatches take the new colour

    def lock_selected(self, locked: bool) -> None:
        if self.view is not None and self.annotations is not None:
            self.annotations.set_locked(self.view.selected_ids(), locked)

    def delete_selected(self) -> None:
        if self.view is None or self.annotations is None:
            return
        try:
            self.annotations.remove(self.view.selected_ids())
        except SlideScopeError as error:
            show_info(str(error))

    def undo(self) -> None:
        if self.annotations is not None:
            self.annotations.undo()

    def redo(self) -> None:
        if self.annotations is not None:
            self.annotations.redo()

    def _brush_size(self, microns: float) -> None:
        if self.view is not None:
            self.view.brush_um = microns

    def _bind_keys(self, layer: Any) -> None:
        for key, action in (
            ("Control-z", self.undo),
            ("Control-Shift-z", self.redo),
            ("Control-Shift-Z", self.redo),
        ):
            layer.bind_key(key, weak_slot(action), overwrite=True)
        for number in range(1, 10):
            layer.bind_key(str(number), weak_slot(self.class_by_number, number), overwrite=True)
        self.viewer.bind_key("Control-z", weak_slot(self.undo), overwrite=True)
        self.viewer.bind_key("Control-Shift-z", weak_slot(self.redo), overwrite=True)

    # -- table -------------------------------------------------------------------------

    def refresh_table(self) -> None:
        if self.annotations is None:
            self.dock.set_table([])
            return
        mpp = self.view.space.mpp if self.view is not None else None
        measured = self.annotations.measurements(mpp)
        items = list(self.annotations)
        kinds = dict(zip((a.id for a in items), annotation_kinds(items)))
        names = {a.id: a.name for a in items}
        rows = [TableRow.of(m, kinds[m.id], names[m.id]) for m in measured.per_annotation]
        self.dock.set_table(rows, measured)

    def go_to_annotation(self, annotation_id: str) -> None:
        """Select an annotation and centre the view on it."""
        if self.annotations is None or annotation_id not in self.annotations or self.view is None:
            return
        centre = self.annotations[annotation_id].geometry.centroid
        if self.view.tool not in ("select", "vertices"):
            self.set_tool("select")
        self.view.select_ids([annotation_id])
        self.slides.go_to(centre.x, centre.y)

    # -- files -------------------------------------------------------------------------

    def import_files(self, paths: list[str | Path]) -> int:
        """Add the annotations of QuPath GeoJSON files to the slide on screen (one undo step
        each); returns how many were added. Errors are shown, nothing saved is touched."""
        if self.annotations is None or self.slides.current is None:
            show_info("Open a slide first, then import its annotations")
            return 0
        added = 0
        dimensions = tuple(self.slides.current.slide.dimensions)
        for path in paths:
            try:
                imported, report = read_annotations(path, slide_dimensions=dimensions)
            except SlideScopeError as error:
                show_error(str(error))
                continue
            self._add_classes(report.classes)
            # a file imported twice (or exported and imported back) adds nothing twice
            new, repeated = new_annotations(self.annotations, list(imported))
            if new:
                self.annotations.add(new, what="import")
            added += len(new)
            # the count first: napari's notification shows the first words of a long line
            # (a slide-named file cut at its first hyphen hid everything else)
            parts = [f"{len(new)} annotation(s) added from {Path(path).name}"]
            if repeated:
                parts.append(f"{repeated} already on the slide, not added again")
            show_info("; ".join(parts + report.changes()))
        return added

    def _add_classes(self, found: dict[str, tuple[int, int, int]]) -> None:
        classes = merge_classes(self.classes, found)
        if len(classes) == len(self.classes):
            return
        project = self.slides.project
        if project is not None:
            project.classes = classes
            project.save()
        if self.view is not None:
            self.view.classes = classes
        if self.store is not None:
            self.store.classes = classes
        self.dock.set_classes(classes, self.active_class, self.hidden)

    def export_file(self, path: str | Path) -> Path | None:
        if self.annotations is None:
            return None
        return write_annotations(path, self.annotations, self.classes, keep_backup=False)

    def ask_import(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(None, "Import annotations", "", GEOJSON_FILTER)
        if paths:
            self.import_files(paths)

    def ask_export(self) -> None:
        if self.annotations is None:
            show_info("Open a slide first")
            return
        start = f"{self.slides.current.slide.identity.slide_id}.geojson"
        path, _ = QFileDialog.getSaveFileName(None, "Export annotations", start, GEOJSON_FILTER)
        if path:
            self.export_file(path)

    def ask_label(self) -> None:
        """Set the slide label (project slides) through a small dialog."""
        project, current = self.slides.project, self.slides.current
        entry = project.find(current.slide.path) if project is not None and current else None
        if entry is None:
            show_info("Slide labels belong to a project: open or create one first")
            return
        text, ok = QInputDialog.getText(
            None, "Slide label", f"Label of {entry.slide_id}:", text=entry.label or ""
        )
        if ok:
            project.set_label(entry.slide_id, text)
            project.save()
