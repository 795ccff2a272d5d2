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
from slidescope.app.analysis.heatmaps import kind_scores
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.display.heatmap_layers import PatchIndex, describe_patch, hotspots, hover_text
from slidescope.app.ui.annotation_layer import is_annotation_click
from slidescope.app.ui.heatmap_view import HeatmapView
from slidescope.app.ui.slide_session import ShownSlide, SlideSession
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.analysis_dock import AnalysisDock
from slidescope.app.ui.widgets.canvas_overlays import CanvasOverlays
from slidescope.app.ui.widgets.patch_gallery import ICON, PatchGallery
from slidescope.app.ui.widgets.prediction_panel import PredictionPanel
from slidescope.app.user_dirs import user_cache_dir


def bundled_checkpoint() -> Path | None:
    """The demo checkpoint shipped in ``resources``, if this install has it."""
    from slidescope.resources import bundled_model

    return bundled_model()


class AnalysisSession:
    """Analyses and heatmaps of the slides of one :class:`SlideSession`."""

    def __init__(
        self,
        slides: SlideSession,
        dock: AnalysisDock,
        prediction: PredictionPanel,
        gallery: PatchGallery,
        checkpoint: Path | None = None,
        overlays: CanvasOverlays | None = None,
    ) -> None:
        self.slides = slides
        self.viewer = slides.viewer
        self.dock = dock
        self.prediction = prediction
        self.gallery = gallery
        self.overlays = overlays
        self.heatmaps = HeatmapView(self.viewer, overlays)
        self.analysis: SlideAnalysis | None = None
        self.index: PatchIndex | None = None
        self.pinned: int | None = None
        self._hotspots: list[int] = []
        self._hotspot = -1
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
        from slidescope.app.analysis.inference import analyze_slide  # torch: not at start-up

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
        from slidescope.app.analysis.inference import analyze_slides

        paths = [project.slide_path(entry) for entry in project]
        self._record_all({path: {} for path in paths}, "queued")
        return self.slides.run_in_background(
            analyze_slides(paths, self.checkpoint, self.cache_dir),
            f"Analysing project {project.name}",
            on_done=self._project_done,
        )

    def _project_done(self, results: dict[Path, SlideAnalysis | str]) -> None:
        failed = {p: {"error": r} for p, r in results.items() if isinstance(r, str)}
        done = {
            p: {"predicted": r.predicted_class}
            for p, r in results.items()
            if isinstance(r, SlideAnalysis)
        }
        self._record_all(failed, "failed")
        self._record_all(done, "done")
        shown = self.slides.current
        if shown is not None and isinstance(results.get(shown.path), SlideAnalysis):
            self.show(results[shown.path])  # type: ignore[arg-type]
        if failed:
            errors = [info["error"] for info in failed.values()]
            show_error(f"{len(errors)} slide(s) could not be analysed: " + "; ".join(errors))

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
        self._record_all({path: info}, state)

    def _record_all(self, infos: dict[Path, dict[str, Any]], state: str) -> None:
        """Record ``state`` (with each slide's info) for many project slides: one save and
        one list update for them all (a save a slide froze "Analyse project" for tens of
        seconds at 1,000 slides)."""
        project = self.slides.project
        if project is None or not self.key or not infos:
            return
        found = zip(project.find_all(infos), infos.values())
        changed = [(entry, info) for entry, info in found if entry is not None]
        if not changed:
            return
        for entry, info in changed:
            project.set_analysis(entry.slide_id, self.key, state, **info)
        project.save()
        if len(changed) == 1:
            self.slides.catalog.show_entry(changed[0][0])
        else:
            self.slides.catalog.refresh()

    # -- showing -----------------------------------------------------------------------

    @property
    def layers(self) -> list[Any]:
        """The heatmap layers on the canvas, lowest first."""
        return list(self.heatmaps.layers.values())

    @property
    def grids(self) -> dict[str, Any]:
        return self.heatmaps.grids

    def show(self, analysis: SlideAnalysis) -> None:
        """Show an analysis of the slide on screen: layers, prediction, trust, gallery."""
        self.heatmaps.clear()
        self.analysis = analysis
        self.index = PatchIndex(analysis)
        self.pinned = None
        self._hotspots, self._hotspot = [], -1
        self.dock.set_classes(list(analysis.class_names), analysis.predicted_class)
        note = f"{analysis.n_patches:,} patches, {analysis.arch} ({Path(analysis.checkpoint_path).name})"
        self.prediction.show_prediction(
            list(analysis.class_names),
            analysis.probabilities,
            note,
            threshold=analysis.decision_threshold,
        )
        trust = analysis.trust
        headline = trust.headline if trust is not None else ""
        self.prediction.show_trust(headline, trust.notes if trust is not None else ())
        if self.overlays is not None:
            self.overlays.banner.show_text(f"⚠ {headline}" if headline else "")
        self.refresh_layers()
        self._fill_gallery()

    def clear(self) -> None:
        self.analysis = None
        self.index = None
        self.pinned = None
        self._hotspots, self._hotspot = [], -1
        self.heatmaps.clear()
        self.prediction.show_prediction(None, None)
        self.prediction.show_trust("")
        if self.overlays is not None:
            self.overlays.banner.show_text("")
            self.overlays.hover.hide()
        self.gallery.show_groups({})

    def refresh_layers(self) -> None:
        """Show the heatmaps the dock has switched on with its display choices, in place."""
        shown = self.slides.current
        if self.analysis is None or shown is None or self.analysis.n_patches == 0:
            self.heatmaps.clear()
            return
        had = bool(self.heatmaps.layers)
        self.heatmaps.sync(
            self.analysis,
            shown.data.space,
            self.dock.kinds(),
            self.dock.class_name(),
            self.dock.display(),
        )
        self._hotspots, self._hotspot = [], -1
        if self.heatmaps.layers and not had:
            self.viewer.layers.selection.active = shown.layer  # keep panning the slide

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
        index = self.patch_at_world(world)
        return "" if index is None else describe_patch(self.analysis, index)

    def patch_at_world(self, world: tuple[float, ...]) -> int | None:
        """The patch under a world position (a grid lookup), or None."""
        shown = self.slides.current
        if self.analysis is None or self.index is None or shown is None:
            return None
        x, y = shown.data.space.to_level0(world)
        return self.index.at(x, y)

    def hover(self, world: tuple[float, ...], canvas_xy: tuple[float, float] | None) -> str:
        """Show the scores under the cursor beside it (and in the dock); returns the text."""
        index = self.patch_at_world(world)
        text = "" if index is None or self.analysis is None else hover_text(self.analysis, index)
        if self.overlays is not None:
            if text and canvas_xy is not None:
                self.overlays.hover.show_at(text, *canvas_xy)
            else:
                self.overlays.hover.hide()
        if text and self.pinned is None and self.analysis is not None and index is not None:
            self.dock.readout.setText(describe_patch(self.analysis, index))
        return text

    def _on_move(self, viewer: Any, event: Any) -> None:
        if self.analysis is None:
            return
        canvas_xy = None
        if self.overlays is not None:
            from qtpy.QtGui import QCursor

            point = self.overlays.canvas.mapFromGlobal(QCursor.pos())
            canvas_xy = (point.x(), point.y())
        self.hover(tuple(event.position), canvas_xy)

    def _on_click(self, viewer: Any, event: Any) -> None:
        if self.analysis is None or self.slides.current is None:
            return
        if is_annotation_click(viewer):  # drawing or selecting annotations: no pin
            return
        self.pinned = self.patch_at_world(tuple(event.position))
        if self.pinned is not None:
            self.dock.readout.setText("Clicked: " + describe_patch(self.analysis, self.pinned))

    def go_to_patch(self, x: float, y: float) -> None:
        """Centre on a patch (level-0 centre ``x, y``), outline it, and zoom to show it large
        (about 1 µm/px or finer)."""
        shown = self.slides.current
        if shown is None:
            return
        self.slides.go_to(x, y)
        per_pixel_x = shown.data.space.per_pixel[1]
        self.viewer.scene.camera.zoom = max(self.viewer.scene.camera.zoom, 1.0 / (2 * per_pixel_x))
        analysis = self.analysis
        if analysis is not None and self.index is not None:
            index = self.index.at(x, y)
            if index is not None:
                px, py = (float(v) for v in analysis.coords[index])
                size = float(analysis.patch_size_level0)
                self.heatmaps.outline(shown.data.space, px, py, size)
                self.viewer.layers.selection.active = shown.layer

    def next_hotspot(self, step: int = 1) -> int | None:
        """Go to the next (``step`` 1) or previous (-1) hotspot of the top heatmap shown."""
        analysis = self.analysis
        if analysis is None or analysis.n_patches == 0:
            return None
        if not self._hotspots:
            kinds = self.dock.kinds() or ["attention"]
            kind = kinds[-1] if kinds[-1] != "masked" else "attention"
            scores = kind_scores(analysis, kind)
            name = f"prob_{self.dock.class_name()}" if kind == "prob" else next(iter(scores))
            values = scores.get(name, next(iter(scores.values())))
            if kind == "hard":
                values = values.astype(float) * ~analysis.masked
            self._hotspots = hotspots(analysis, values)
        if not self._hotspots:
            return None
        self._hotspot = (self._hotspot + step) % len(self._hotspots)
        index = self._hotspots[self._hotspot]
        half = analysis.patch_size_level0 / 2
        x, y = (float(v) + half for v in analysis.coords[index])
        self.go_to_patch(x, y)
        self.dock.readout.setText(
            f"Hotspot {self._hotspot + 1} of {len(self._hotspots)}: "
            + describe_patch(analysis, index)
        )
        return index

    def _fill_gallery(self) -> None:
        analysis, shown = self.analysis, self.slides.current
        if analysis is None or shown is None or analysis.n_patches == 0:
            self.gallery.show_groups({})
            return
        from slidescope.app.analysis.top_patches import patch_images_job

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
        from slidescope.app.export.slide_export import ExportOptions, export_slide

        options = ExportOptions(display=self.dock.display())
        return self.slides.run_in_background(
            export_slide(shown.slide, analysis, Path(out_dir), options),
            f"Exporting {analysis.identity.slide_id}",
            on_done=lambda files: show_info(
                f"Exported {len(files)} files to {Path(out_dir) / analysis.identity.slide_id}"
            ),
        )
