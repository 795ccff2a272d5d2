"""Heatmap export of a cohort: one task per slide, serially or on a Dask cluster.

Each slide runs the core jobs (:func:`~slidescope.app.analysis.inference.analyze_slide`,
then :func:`~slidescope.app.export.slide_export.export_analysis`) through ``run_job``; a
slide whose done marker matches the checkpoint and options is skipped, so a second run
resumes; a failing slide is recorded and the others go on. ``summary.csv`` and
``summary.json`` in the output folder list every slide's outcome.

Slides run through :func:`slidescope.app.batch.runner.run_batch`: serially in a child
process (``workers=0``), on a local Dask cluster of single-threaded worker processes, or on
any scheduler by address (``tcp://host:8786``); a slide whose decoder crashes fails alone.
With ``features_dir`` the export reuses the feature files there that fit the checkpoint
(extractor and patch geometry) and extracts only the missing ones, into that folder.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slidescope.app.batch.outcomes import SlideOutcome, failed_outcome
from slidescope.app.batch.runner import run_batch
from slidescope.app.errors import SettingsError, SlideScopeError
from slidescope.app.export.slide_export import ExportOptions, done_marker, export_analysis
from slidescope.app.jobs import Job, Progress, run_job
from slidescope.app.slides.slide import slide_id_of
from slidescope.app.slides.zarr_folder import is_zarr_directory as _is_zarr
from slidescope.models.files import remove_stale_temps

__all__ = ["ExportTask", "SlideListError", "SlideOutcome", "expand_slides", "export_batch"]

SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".dcm", ".zarr",
)  # fmt: skip


class SlideListError(SlideScopeError):
    """The slides to export cannot be found."""


@dataclass(frozen=True)
class ExportTask:
    """Everything one slide's export needs; picklable, so it travels to Dask workers."""

    slide: str
    checkpoint: str
    out_dir: str
    options: ExportOptions
    cache_dir: str
    device: str = "auto"
    mask_ratio: float | None = None
    slide_mpp: float | None = None
    use_teacher: bool = False
    features_dir: str | None = None

    def __post_init__(self) -> None:
        if self.mask_ratio is not None and not 0.0 <= self.mask_ratio < 1.0:
            raise SettingsError(
                f"mask ratio must lie in [0, 1) (a share of the patches), got {self.mask_ratio}"
            )


def expand_slides(inputs: Iterable[str | Path]) -> list[Path]:
    """Slide paths from files, folders (their slides, sorted) and CSV lists.

    A CSV names slides in a column ``slide``, ``path`` or ``slide_path`` (else its first
    column); relative paths are relative to the CSV's folder.
    """
    slides: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == ".csv" and path.is_file():
            slides.extend(_slides_of_csv(path))
        elif path.is_dir() and not _is_zarr(path):
            found = sorted(p for p in path.iterdir() if _looks_like_slide(p))
            if not found:
                raise SlideListError(f"{path}: no slide files in this folder")
            slides.extend(found)
        else:
            slides.append(path)
    if not slides:
        raise SlideListError("no slides given")
    return slides


def export_one(task: ExportTask) -> Job[SlideOutcome]:
    """Analyse and export one slide (or skip it when its export is already complete)."""
    from slidescope.app.analysis.inference import analyze_slide
    from slidescope.app.analysis.results_cache import file_sha256
    from slidescope.app.slides import open_slide

    start = time.perf_counter()
    slide_id = slide_id_of(task.slide)
    marker = done_marker(task.out_dir, slide_id)
    # a writer killed mid-file in an earlier run left a hidden temp file: clear it
    remove_stale_temps(marker.parent)
    if _is_done(marker, task, file_sha256(task.checkpoint)):
        yield Progress(1, 1, f"{slide_id}: already exported")
        record = _marker(marker)
        return SlideOutcome(
            task.slide,
            slide_id,
            "skipped",
            patches=int(record.get("patches", 0)),
            finished_at=marker.stat().st_mtime,
            predicted_class=record.get("predicted_class"),
            files=list(record.get("files", [])),
        )
    analysis = yield from analyze_slide(
        task.slide,
        task.checkpoint,
        task.cache_dir,
        device=task.device,
        mask_ratio=task.mask_ratio,
        slide_mpp=task.slide_mpp,
        use_teacher=task.use_teacher,
        features_dir=task.features_dir,
    )
    yield Progress(0, None, f"{slide_id}: heatmaps")
    with open_slide(task.slide, mpp=task.slide_mpp) as slide:
        thumbnail = slide.thumbnail(task.options.thumbnail_size)
    files = export_analysis(analysis, thumbnail, task.out_dir, task.options)
    return SlideOutcome(
        task.slide,
        slide_id,
        "done" if analysis.status == "ok" else analysis.status,
        seconds=time.perf_counter() - start,
        patches=analysis.n_patches,
        finished_at=time.time(),
        predicted_class=analysis.predicted_class,
        files=[p.name for p in files],
    )


def run_export_task(task: ExportTask) -> SlideOutcome:
    """Run :func:`export_one` to its end; any error becomes a ``failed`` outcome.

    The Dask task: it never raises, so one broken slide cannot stop a cohort.
    """
    start = time.perf_counter()
    try:
        return run_job(export_one(task))
    except Exception as error:  # recorded per slide, the batch goes on
        return failed_outcome(task.slide, error, time.perf_counter() - start)


def export_batch(
    tasks: Sequence[ExportTask],
    out_dir: str | Path,
    *,
    workers: int = 0,
    scheduler: str | None = None,
    on_message: Callable[[str], None] | None = None,
) -> Job[list[SlideOutcome]]:
    """Export every task's slide; progress counts slides; the summary is always written.

    Parameters
    ----------
    tasks : sequence of ExportTask
    out_dir : path
        Where ``summary.csv`` and ``summary.json`` go.
    workers : int
        Worker processes of a local Dask cluster; 0 runs the slides one after another in a
        child process (a crashing decoder takes down only its slide).
    scheduler : str, optional
        Address of a running Dask scheduler to use instead.
    on_message : callable, optional
        Receives notes for the user (mode, dashboard address).
    """
    gpu = any(t.device != "cpu" for t in tasks)
    return run_batch(
        tasks, run_export_task, out_dir, workers=workers, scheduler=scheduler, gpu=gpu,
        on_message=on_message,
    )  # fmt: skip


def _is_done(marker: Path, task: ExportTask, checkpoint_hash: str) -> bool:
    record = _marker(marker)
    return bool(record) and (
        record.get("checkpoint_sha256") == checkpoint_hash
        and record.get("display") == task.options.display.to_dict()
        and record.get("kinds") == list(task.options.kinds)
        and record.get("overlay_format") == task.options.overlay_format
    )


def _marker(marker: Path) -> dict[str, Any]:
    """The done marker's record; empty when there is none (or it is unreadable)."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _slides_of_csv(path: Path) -> list[Path]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise SlideListError(f"{path}: an empty CSV; expected a column 'slide' or 'path'")
        column = next(
            (c for c in ("slide", "path", "slide_path") if c in reader.fieldnames),
            reader.fieldnames[0],
        )
        slides = []
        for row in reader:
            value = (row.get(column) or "").strip()
            if value:
                slide = Path(value)
                slides.append(slide if slide.is_absolute() else path.parent / slide)
    if not slides:
        raise SlideListError(f"{path}: no slides listed in column {column!r}")
    return slides


def _looks_like_slide(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return _is_zarr(path)
    return path.suffix.lower() in SLIDE_SUFFIXES
