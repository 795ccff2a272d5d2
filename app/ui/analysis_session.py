"""The analysis in the window: run it in the background, show its heatmaps, read them.

An :class:`AnalysisSession` sits beside a
:class:`~slidescope.app.ui.slide_session.SlideSession`: it runs the core inference job
(:func:`~slidescope.app.analysis.inference.analyze_slide`) on the slide shown or on every
slide of the project, keeps the result of the slide on screen, paints the heatmap layers the
dock asks for, fills the prediction panel and the patch gallery, answers hover and click
with the patch's scores, and exports with the export core. Results are cached by the core
(per slide and checkpoint), so showing a slide again shows its heatmaps at once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info
from slidescope.app.analysis.inference import analyze_slide, analyze_slides
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.analysis.top_patches import patch_images_job
from slidescope.app.display.heatmap_layers import describe_patch, heatmap_layers, patch_at
from slidescope.app.export.slide_export import ExportOptions, export_slide
from slidescope.app.ui.annotation_layer import is_annotation_click
from slidescope.app.ui.slide_session import ShownSlide, SlideSession
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.analysis_dock import AnalysisDock
from slidescope.app.ui.widgets.patch_gallery import ICON, PatchGallery
from slidescope.app.ui.widgets.prediction_panel import PredictionPanel
from slidescope.app.user_dirs import user_cache_dir


def bundled_checkpoint() -> Path | None:
    """The demo checkpoint shipped in ``resources``, if this install has it."""
    from slidescope.resources import resource_path

    try:
        return resource_path("demo_model.safetensors")
    except FileNotFoundError:
        return None


class AnalysisSession:
    """Analyses and heatmaps of the slides of one :class:`SlideSession`."""

    def __init__(
        self,
        slides: SlideSession,
        dock: AnalysisDock,
        prediction: PredictionPanel,
        gallery: PatchGallery,
        checkpoint: Path | None = None,
    ) -> None:
        self.slides = slides
        self.viewer = slides.viewer
        self.dock = dock
        self.prediction = prediction
        self.gallery = gallery
        self.analysis: SlideAnalysis | None = None
        self.layers: list[Any] = []
        self.grids: dict[str, Any] = {}
        self.pinned: int | None = None
        self.checkpoint: Path | None = None
        self.set_checkpoint(checkpoint or bundled_checkpoint())
        dock.run_slide.connect(weak_slot(self.run_slide))
        dock.run_project.connect(weak_slot(self.run_project))
        dock.display_changed.connect(weak_slot(self.refresh_layers))
        gallery.patch_clicked.connect(weak_handler(self.go_to_patch))
        slides.listeners.append(weak_handler(self._slide_changed))
        self.viewer.mouse_move_callbacks.append(weak_handler(self._on_move))
        self.viewer.mouse_drag_callbacks.append(weak_handler(self._on_click))

    # -- running -----------------------------------------------------------------------

    def set_checkpoint(self, path: str | Path | None) -> None:
        self.checkpoint = Path(path) if path else None
        self.dock.set_checkpoint(self.checkpoint)

    @property
    def cache_dir(self) -> Path:
        """The project's caches, or the user's cache when no project is open."""
        project = self.slides.project
        return (project.caches_dir if project else user_cache_dir()) / "analysis"

    @property
    def key(self) -> str:
        """The name a project records this checkpoint's analyses under."""
        return self.checkpoint.stem if self.checkpoint else ""

    def run_slide(self) -> Any:
        """Analyse the slide on screen in the background; returns the worker (or None)."""
        shown = self.slides.current
        if shown is None:
            show_info("Open a slide first, then analyse it.")
            return None
        if self.checkpoint is None:
            show_error("Choose a checkpoint (a .safetensors MIL model) first.")
            return None
        path = shown.path
        self._record(path, "running")
        return self.slides.run_in_background(
            analyze_slide(path, self.checkpoint, self.cache_dir),
            f"Analysing {path.name}",
            on_done=functools.partial(self._analysed, path),
            on_error=functools.partial(self._failed, path),
            on_cancel=lambda: self._record(path, "cancelled"),
        )

    def run_project(self) -> Any:
        """Analyse every slide of the project; one failing slide does not stop the others."""
        project = self.slides.project
        if project is None or not len(project):
            show_info("Open a project with slides first (File > Open Project...).")
            return None
        if self.checkpoint is None:
            show_error("Choose a checkpoint (a .safetensors MIL model) first.")
            return None
        paths = [project.slide_path(entry) for entry in project]
        for path in paths:
            self._record(path, "queued")
        return self.slides.run_in_background(
            analyze_slides(paths, self.checkpoint, self.cache_dir),
            f"Analysing project {project.name}",
            on_done=self._project_done,
        )

    def _project_done(self, results: dict[Path, SlideAnalysis | str]) -> None:
        failed = []
        for path, result in results.items():
            if isinstance(result, str):
                self._record(path, "failed", error=result)
                failed.append(result)
            else:
                self._record(path, "done", predicted=result.predicted_class)
        shown = self.slides.current
        if shown is not None and isinstance(results.get(shown.path), SlideAnalysis):
            self.show(results[shown.path])  # type: ignore[arg-type]
        if failed:
            show_error(f"{len(failed)} slide(s) could not be analysed: " + "; ".join(failed))

    def _analysed(self, path: Path, analysis: SlideAnalysis) -> None:
        self._record(path, "done", predicted=analysis.predicted_class)
        shown = self.slides.current
        if shown is not None and shown.path == path:
            self.show(analysis)

    def _failed(self, path: Path, error: BaseException) -> None:
        self._record(path, "failed", error=str(error))
        from slidescope.app.ui.workers import describe_error

        show_error(describe_error(f"Analysing {path.name}", error))

    def _record(self, path: Path, state: str, **info: Any) -> None:
        project = self.slides.project
        entry = project.find(path) if project is not None else None
        if project is None or entry is None or not self.key:
            return
        project.set_analysis(entry.slide_id, self.key, state, **info)
        project.save()
        self.slides._refresh_list()

    # -- showing -----------------------------------------------------------------------

    def show(self, analysis: SlideAnalysis) -> None:
        """Show an analysis of the slide on screen: layers, prediction, gallery."""
        self.analysis = analysis
        self.pinned = None
        self.dock.set_classes(list(analysis.class_names))
        note = f"{analysis.n_patches:,} patches, {analysis.arch} ({Path(analysis.checkpoint_path).name})"
        self.prediction.show_prediction(list(analysis.class_names), analysis.probabilities, note)
        self.refresh_layers()
        self._fill_gallery()

    def clear(self) -> None:
        self.analysis = None
        self.pinned = None
        self._remove_layers()
        self.prediction.show_prediction(None, None)
        self.gallery.show_groups({})

    def refresh_layers(self) -> None:
        """Repaint the heatmaps the dock has switched on, with its display choices."""
        self._remove_layers()
        shown = self.slides.current
        if self.analysis is None or shown is None or self.analysis.n_patches == 0:
            return
        display = self.dock.display()
        for kind in self.dock.kinds():
            for heat in heatmap_layers(
                self.analysis, kind, display, shown.data.space, self.dock.class_name()
            ):
                self.layers.append(self.viewer.add_image(heat.rgba, **heat.kwargs))
                self.grids[heat.name] = heat.grid
        if self.layers:
            self.viewer.layers.selection.active = shown.layer  # keep panning the slide

    def _remove_layers(self) -> None:
        for layer in self.layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers = []
        self.grids = {}

    def _slide_changed(self, shown: ShownSlide | None) -> None:
        self.clear()
        if shown is None or self.checkpoint is None or self.slides.project is None:
            return
        entry = self.slides.project.find(shown.path)
        state = entry.analyses.get(self.key, {}).get("state") if entry else None
        if state == "done":  # cached by the core: shows at once
            self.run_slide()

    # -- reading -----------------------------------------------------------------------

    def readout(self, world: tuple[float, ...]) -> str:
        """The scores of the patch under a world position, or ""."""
        shown = self.slides.current
        if self.analysis is None or shown is None:
            return ""
        x, y = shown.data.space.to_level0(world)
        index = patch_at(self.analysis, x, y)
        return "" if index is None else describe_patch(self.analysis, index)

    def _on_move(self, viewer: Any, event: Any) -> None:
        if self.pinned is None and self.analysis is not None:
            text = self.readout(tuple(event.position))
            if text:
                self.dock.readout.setText(text)

    def _on_click(self, viewer: Any, event: Any) -> None:
        if self.analysis is None or self.slides.current is None:
            return
        if is_annotation_click(viewer):  # drawing or selecting annotations: no pin
            return
        x, y = self.slides.current.data.space.to_level0(tuple(event.position))
        self.pinned = patch_at(self.analysis, x, y)
        if self.pinned is not None:
            self.dock.readout.setText("Clicked: " + describe_patch(self.analysis, self.pinned))

    def go_to_patch(self, x: float, y: float) -> None:
        """Centre on a patch at a zoom that shows it large (about 1 µm/px or finer)."""
        shown = self.slides.current
        if shown is None:
            return
        self.slides.go_to(x, y)
        per_pixel_x = shown.data.space.per_pixel[1]
        self.viewer.scene.camera.zoom = max(self.viewer.scene.camera.zoom, 1.0 / (2 * per_pixel_x))

    def _fill_gallery(self) -> None:
        analysis, shown = self.analysis, self.slides.current
        if analysis is None or shown is None or analysis.n_patches == 0:
            self.gallery.show_groups({})
            return
        self.slides.run_in_background(
            patch_images_job(shown.slide, analysis, ICON),
            "Patch gallery",
            on_done=self.gallery.show_groups,
        )

    # -- export ------------------------------------------------------------------------

    def export(self, out_dir: str | Path) -> Any:
        """Write what ``slidescope export`` writes for the slide on screen, in the background."""
        analysis, shown = self.analysis, self.slides.current
        if analysis is None or shown is None:
            show_info("Analyse the slide first, then export it.")
            return None
        options = ExportOptions(display=self.dock.display())
        return self.slides.run_in_background(
            export_slide(shown.slide, analysis, Path(out_dir), options),
            f"Exporting {analysis.identity.slide_id}",
            on_done=lambda files: show_info(
                f"Exported {len(files)} files to {Path(out_dir) / analysis.identity.slide_id}"
            ),
        )
