"""Fine-tuning in the window: the Train dock's actions on the open project and slide.

Start runs the core job :func:`~slidescope.app.training.finetune.finetune` in the
background (live curves from its per-epoch Progress metrics, Cancel closes it: the last
finished epoch is kept on disk and a new Start resumes from it). When it finishes, the new
model joins the project's versions, the open slide is analysed with it, and its heatmap is
shown beside the old one (a two-up view: a second copy of the slide to the right of the
first, with the new heatmap on it); Keep makes it the active version, Discard removes it.
The review queue (:mod:`~slidescope.app.training.review_queue`) steps through the patches
the model is least sure of; Label makes the patch an annotation of the chosen class.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info
from shapely.geometry import box
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.annotations.annotation_io import read_annotations
from slidescope.app.annotations.model import Annotation
from slidescope.app.annotations.store import AnnotationStore
from slidescope.app.display.heatmap_layers import heatmap_layers
from slidescope.app.display.slide_layer import METADATA_KEY as SLIDE_METADATA_KEY
from slidescope.app.errors import SlideScopeError
from slidescope.app.training.review_queue import ReviewCursor, review_queue
from slidescope.app.ui.heatmap_view import napari_colormap
from slidescope.app.ui.napari_access import layers_changed_together
from slidescope.app.ui.weak_slots import weak_handler, weak_slot
from slidescope.app.ui.widgets.train_dock import SlideRow, TrainDock
from slidescope.models.training.finetune_settings import FinetuneSettings

if TYPE_CHECKING:  # torch comes with these: imported when a run starts, not at start-up
    from slidescope.app.training.finetune import FinetuneOutcome, FinetuneRequest

#: gap between the old and the new view of the slide, as a share of its width
GAP = 0.04


class TrainSession:
    """Connects a :class:`TrainDock` to the window's slide and analysis sessions."""

    def __init__(self, slides: Any, analysis: Any, dock: TrainDock) -> None:
        self.slides = slides
        self.analysis = analysis
        self.viewer = slides.viewer
        self.dock = dock
        self.worker: Any = None
        self.new_version: str | None = None
        self.base_checkpoint: Path | None = None
        self.comparison: list[Any] = []
        self.cursor = ReviewCursor([])
        self.review_layer: Any = None
        #: perf_counter marks of the last run: "trained", "compared" (heatmaps on screen)
        self.marks: dict[str, float] = {}
        #: each annotation file's (mtime, size) and region count, by path
        self._region_counts: dict[str, tuple[tuple[int, int], int]] = {}
        dock.start_requested.connect(weak_slot(self.start))
        dock.cancel_requested.connect(weak_slot(self.cancel))
        dock.keep_requested.connect(weak_slot(self.keep))
        dock.discard_requested.connect(weak_slot(self.discard))
        dock.model_chosen.connect(weak_slot(self.choose_model))
        dock.review_find.connect(weak_slot(self.find_review))
        dock.review_next.connect(weak_slot(self.review_next))
        dock.review_previous.connect(weak_slot(self.review_previous))
        dock.review_label.connect(weak_slot(self.label_review))
        self.viewer.bind_key("n", lambda _v: self.review_next(), overwrite=True)
        self.viewer.bind_key("p", lambda _v: self.review_previous(), overwrite=True)
        self.viewer.bind_key(
            "l", lambda _v: self.label_review(self.dock.review_class.currentText()), overwrite=True
        )
        slides.listeners.append(weak_handler(self._slide_changed))
        self.refresh()

    def _regions(self, path: Path) -> int:
        """How many regions a slide's annotation file holds, read again only once the file
        changed: the table is refilled on every slide shown, and parsing every annotated
        slide's file each time took seconds in a large annotated project."""
        try:
            stat = path.stat()
        except OSError:
            return 0  # not annotated
        version = (stat.st_mtime_ns, stat.st_size)
        known = self._region_counts.get(str(path))
        if known is not None and known[0] == version:
            return known[1]
        try:
            count = len(read_annotations(path)[0])
        except SlideScopeError:
            count = 0  # the Annotations dock says what is wrong with it when the slide opens
        self._region_counts[str(path)] = (version, count)
        return count

    def _slide_changed(self, shown: Any) -> None:
        self.remove_comparison()
        self.cursor = ReviewCursor([])
        self.review_layer = None
        self.refresh()

    # -- the dock's lists --------------------------------------------------------------

    def refresh(self) -> None:
        """Fill the slide table and the model picker from the project."""
        project = self.slides.project
        rows: list[SlideRow] = []
        names: list[tuple[str, str]] = []
        if project is not None:
            for entry in project:
                regions = self._regions(project.annotation_path(entry.slide_id))
                rows.append(SlideRow(entry.slide_id, entry.label, regions))
            for version in project.model_versions:
                text = version.name + (f" (from {version.base})" if version.base else "")
                names.append((version.name, text))
            self.dock.set_classes([c.name for c in project.classes])
        self.dock.set_slides(rows)
        active = project.active_model if project is not None else None
        if not names and self.analysis.checkpoint is not None:
            names = [("", Path(self.analysis.checkpoint).name)]
        self.dock.set_models(names, active)

    # -- fine-tuning --------------------------------------------------------------------

    def request(self) -> FinetuneRequest:
        """The fine-tuning request the dock describes, for the open project."""
        from slidescope.app.training.finetune import FinetuneRequest, TrainingSlide

        project = self.slides.project
        if project is None:
            raise SlideScopeError("Open a project first: fine-tuning learns from its slides")
        base = self.analysis.checkpoint
        if base is None:
            raise SlideScopeError("Choose the model to fine-tune first (Analysis > Checkpoint)")
        chosen = []
        for slide_id in self.dock.ticked():
            entry = project.slide(slide_id)
            path = project.annotation_path(slide_id)
            chosen.append(
                TrainingSlide(
                    project.slide_path(entry), entry.label, path if path.is_file() else None
                )
            )
        out = _new_name(project.models_dir, Path(base).stem)
        outside = self.dock.outside_class.text().strip() or None
        return FinetuneRequest(
            base=Path(base), slides=chosen, out=out, cache_dir=self.analysis.cache_dir,
            settings=FinetuneSettings(
                method=self.dock.method.currentText(), epochs=self.dock.epochs.value(),
                instance_weight=self.dock.instance_weight.value(),
            ),
            outside_class=outside,
        )  # fmt: skip

    def start(self) -> Any:
        """Start fine-tuning in the background; returns the worker (None when refused)."""
        try:
            request = self.request()
        except SlideScopeError as error:
            show_error(str(error))
            return None
        from slidescope.app.training.finetune import finetune as finetune_job

        self.base_checkpoint = request.base
        self.dock.clear_curves()
        self.dock.set_running(True)
        self.dock.status.setText(f"Fine-tuning {request.base.name} -> {request.out.name}")
        self.worker = self.slides.run_in_background(
            finetune_job(request), f"Fine-tuning {request.base.name}",
            on_done=self._trained, on_error=self._failed, on_cancel=self._cancelled,
        )  # fmt: skip
        self.worker.yielded.connect(self._progress)
        return self.worker

    def _progress(self, progress: Any) -> None:
        if progress.metrics:
            self.dock.add_epoch(progress.metrics)
            self.dock.status.setText(progress.what)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _cancelled(self) -> None:
        self.dock.set_running(False)
        self.dock.status.setText("Cancelled; Start again resumes from the last finished epoch")

    def _failed(self, error: BaseException) -> None:
        from slidescope.app.ui.workers import describe_error

        self.dock.set_running(False)
        self.dock.status.setText(str(error))
        show_error(describe_error("Fine-tuning", error))

    def _trained(self, outcome: FinetuneOutcome) -> Any:
        self.marks = {"trained": time.perf_counter()}
        self.dock.set_running(False)
        project = self.slides.project
        base_name = None
        if project is not None:
            versions = {v.name for v in project.model_versions}
            base_stem = Path(self.base_checkpoint or "").stem
            base_name = base_stem if base_stem in versions else None
            version = project.add_model_version(outcome.result.path, base=base_name)
            project.save()
            self.new_version = version.name
        self.refresh()
        shown = self.slides.current
        if shown is None:
            self.dock.set_comparing(self.new_version is not None)
            return None
        from slidescope.app.analysis.inference import analyze_slide

        self.dock.status.setText(f"Analysing {shown.path.name} with {outcome.result.path.name}")
        return self.slides.run_in_background(
            analyze_slide(shown.path, outcome.result.path, self.analysis.cache_dir),
            f"Analysing {shown.path.name} with the new model",
            on_done=self.show_comparison,
        )

    # -- before / after -----------------------------------------------------------------

    def show_comparison(self, analysis: SlideAnalysis) -> None:
        """Show the new model's heatmap on a copy of the slide to the right of the old one."""
        self.remove_comparison()
        shown = self.slides.current
        if shown is None or analysis.n_patches == 0:
            return
        (_y0, x0), (_y1, x1) = shown.layer.extent.world[:, -2:]
        dx = (x1 - x0) * (1 + GAP)
        slide_kwargs = dict(shown.data.kwargs)
        slide_kwargs["name"] = "after: slide"
        # a picture of the slide beside it, not a slide for the session to adopt
        slide_kwargs["metadata"] = {
            k: v for k, v in slide_kwargs.get("metadata", {}).items() if k != SLIDE_METADATA_KEY
        }
        slide_kwargs["translate"] = _shifted(slide_kwargs.get("translate"), dx)
        self.comparison.append(self.viewer.add_image(shown.data.levels, **slide_kwargs))
        display = self.analysis.dock.display()
        for kind in self.analysis.dock.kinds() or ["attention"]:
            for heat in heatmap_layers(
                analysis, kind, display, shown.data.space, self.analysis.dock.class_name()
            ):
                kwargs = dict(heat.kwargs)
                kwargs["name"] = f"after: {heat.name} ({Path(analysis.checkpoint_path).stem})"
                kwargs["translate"] = _shifted(kwargs.get("translate"), dx)
                layer = self.viewer.add_image(
                    heat.data,
                    colormap=napari_colormap(heat.colors, heat.colormap_name),
                    contrast_limits=heat.contrast_limits,
                    **kwargs,
                )
                self.comparison.append(layer)
        self.viewer.reset_view()
        self.viewer.layers.selection.active = shown.layer
        self.dock.set_comparing(True)
        before = self.analysis.analysis
        self.dock.status.setText(
            f"Left: before{_verdict(before)}; right: after{_verdict(analysis)}. "
            "Keep the new version or discard it."
        )
        self.marks["compared"] = time.perf_counter()

    def remove_comparison(self) -> None:
        if not self.comparison:
            return
        with layers_changed_together(self.viewer):
            for layer in self.comparison:
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
        self.comparison = []

    def keep(self) -> None:
        """Make the new version the active one; its heatmaps replace the old ones."""
        project = self.slides.project
        if project is None or self.new_version is None:
            return
        self.choose_model(self.new_version)
        self.new_version = None
        self.dock.set_comparing(False)

    def discard(self) -> None:
        """Remove the new version from the project (and its file); the old one stays."""
        project = self.slides.project
        if project is None or self.new_version is None:
            return
        version = project.model_version(self.new_version)
        path = project.model_path(version.name)
        project.model_versions.remove(version)
        project.save()
        path.unlink(missing_ok=True)
        self.new_version = None
        self.remove_comparison()
        self.dock.set_comparing(False)
        self.refresh()
        show_info(f"Discarded {path.name}")

    def choose_model(self, name: str) -> None:
        """Switch the active version: the analysis repaints with it."""
        project = self.slides.project
        if project is None or not name:
            return
        project.set_active_model(name)
        project.save()
        self.remove_comparison()
        self.analysis.set_checkpoint(project.model_path(name))
        self.refresh()
        if self.slides.current is not None:
            self.analysis.run_slide()

    # -- where to annotate next ------------------------------------------------------------

    def find_review(self) -> None:
        analysis = self.analysis.analysis
        if analysis is None:
            show_info("Analyse the slide first: the queue ranks its patches.")
            return
        self.cursor = ReviewCursor(review_queue(analysis))
        self.dock.set_classes(list(analysis.class_names))
        self.dock.review_status.setText(f"{len(self.cursor.items)} places to look at")
        self.review_next()

    def review_next(self) -> None:
        self._go(self.cursor.next())

    def review_previous(self) -> None:
        self._go(self.cursor.previous())

    def _go(self, item: Any) -> None:
        if item is None:
            return
        shown = self.slides.current
        if shown is None:
            return
        space = shown.data.space
        corners = [
            space.to_world(item.x, item.y),
            space.to_world(item.x + item.size, item.y + item.size),
        ]
        (wy0, wx0), (wy1, wx1) = corners
        rectangle = [[wy0, wx0], [wy0, wx1], [wy1, wx1], [wy1, wx0]]
        if self.review_layer is None or self.review_layer not in self.viewer.layers:
            self.review_layer = self.viewer.add_shapes(
                [rectangle], shape_type="rectangle", edge_color="yellow", face_color="transparent",
                edge_width=max(abs(wx1 - wx0) * 0.06, 1e-6), name="review",
            )  # fmt: skip
        else:
            self.review_layer.data = [rectangle]
        # centred on the patch, at the zoom the user chose
        self.viewer.scene.camera.center = ((wy0 + wy1) / 2, (wx0 + wx1) / 2)
        self.viewer.layers.selection.active = shown.layer
        position = f"{self.cursor.position + 1}/{len(self.cursor.items)}"
        self.dock.review_status.setText(f"{position}: {item.reason} ({item.uncertainty:.2f})")

    def label_review(self, class_name: str) -> None:
        """Make the patch under review an annotation of ``class_name`` (saved at once)."""
        item = self.cursor.current
        project = self.slides.project
        shown = self.slides.current
        if item is None or shown is None or not class_name:
            return
        if project is None or project.find(shown.path) is None:
            show_info("Label patches of a project's slide (open it from a project).")
            return
        entry = project.find(shown.path)
        store = AnnotationStore.for_project(project, entry.slide_id)
        annotations = store.load()
        geometry = box(item.x, item.y, item.x + item.size, item.y + item.size)
        annotations.add(Annotation(geometry=geometry, classification=class_name))
        store.save(annotations)
        self.dock.review_status.setText(f"Labelled as {class_name}; next with N")
        self.refresh()


def _verdict(analysis: SlideAnalysis | None) -> str:
    """`` (lesion, 87%)``: the slide's class by the model's rule and its probability."""
    index = None if analysis is None else analysis.predicted_index
    if analysis is None or index is None:
        return ""
    return f" ({analysis.class_names[index]}, {float(analysis.probabilities[index]):.0%})"


def _shifted(translate: Any, dx: float) -> tuple[float, ...]:
    values = list(translate) if translate is not None else [0.0, 0.0]
    values[-1] = float(values[-1]) + dx
    return tuple(float(v) for v in values)


def _new_name(folder: Path, stem: str) -> Path:
    """``<stem>-ft1.safetensors``, ``-ft2``... the first that does not exist."""
    base = stem.split("-ft")[0]
    n = 1
    while (folder / f"{base}-ft{n}.safetensors").exists():
        n += 1
    return folder / f"{base}-ft{n}.safetensors"
