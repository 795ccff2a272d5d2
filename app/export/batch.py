"""Heatmap export of a cohort: one task per slide, serially or on a Dask cluster.

Each slide runs the core jobs (:func:`~slidescope.app.analysis.inference.analyze_slide`,
then :func:`~slidescope.app.export.slide_export.export_analysis`) through ``run_job``; a
slide whose done marker matches the checkpoint and options is skipped, so a second run
resumes; a failing slide is recorded and the others go on. ``summary.csv`` and
``summary.json`` in the output folder list every slide's outcome.

The cluster is a ``distributed.LocalCluster`` of a few single-threaded worker processes by
default, or any scheduler by address (``tcp://host:8786``); ``workers=0`` runs in this
process (tests, debugging).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slidescope.app.errors import SettingsError, SlideScopeError
from slidescope.app.export.slide_export import ExportOptions, done_marker, export_analysis
from slidescope.app.jobs import Job, Progress, run_job
from slidescope.app.slides.slide import slide_id_of
from slidescope.app.slides.zarr_folder import is_zarr_directory as _is_zarr
from slidescope.models.errors import ModelError
from slidescope.models.files import write_text_atomic

SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".dcm", ".zarr",
)  # fmt: skip


class SlideListError(SlideScopeError):
    """The slides to export cannot be found."""


@dataclass
class SlideOutcome:
    """What happened to one slide of a batch."""

    slide: str
    slide_id: str
    status: str  # "done", "skipped", "no tissue" or "failed"
    error: str = ""
    seconds: float = 0.0
    predicted_class: str | None = None
    files: list[str] = field(default_factory=list)


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
    if _is_done(marker, task, file_sha256(task.checkpoint)):
        yield Progress(1, 1, f"{slide_id}: already exported")
        record = _marker(marker)
        return SlideOutcome(
            task.slide,
            slide_id,
            "skipped",
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
        # a user error says what to do by itself; anything else is named by its type
        user_error = isinstance(error, (SlideScopeError, ModelError))
        reason = str(error) if user_error else f"{type(error).__name__}: {error}"
        return SlideOutcome(
            task.slide, slide_id_of(task.slide), "failed", reason, time.perf_counter() - start
        )


def export_batch(
    tasks: Sequence[ExportTask],
    out_dir: str | Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
) -> Job[list[SlideOutcome]]:
    """Export every task's slide; progress counts slides; writes the summary last.

    Parameters
    ----------
    tasks : sequence of ExportTask
    out_dir : path
        Where ``summary.csv`` and ``summary.json`` go.
    workers : int
        Worker processes of the local Dask cluster; 0 runs every slide in this process.
    scheduler : str, optional
        Address of a running Dask scheduler to use instead of a local cluster.
    """
    total = len(tasks)
    outcomes: list[SlideOutcome] = []
    yield Progress(0, total, "starting")
    if scheduler is None and workers <= 0:
        for task in tasks:
            outcomes.append(run_export_task(task))
            yield Progress(len(outcomes), total, f"{outcomes[-1].slide_id}: {outcomes[-1].status}")
    else:
        outcomes = yield from _on_dask(tasks, workers, scheduler)
    write_summary(out_dir, outcomes)
    return outcomes


def _on_dask(
    tasks: Sequence[ExportTask], workers: int, scheduler: str | None
) -> Job[list[SlideOutcome]]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        # processes, one thread each: torch and the slide readers are not shared state
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else scheduler)
    futures = []
    try:
        if cluster is not None:
            # one torch thread per worker process: the processes already share the cores
            client.run(_single_threaded_torch)
        futures = client.map(run_export_task, list(tasks), pure=False)
        order = {f.key: i for i, f in enumerate(futures)}
        results: list[SlideOutcome | None] = [None] * len(futures)
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            results[order[future.key]] = outcome
            yield Progress(done, len(futures), f"{outcome.slide_id}: {outcome.status}")
        return [r for r in results if r is not None]
    finally:
        # closing the job (cancel) drops the slides not started yet
        client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


def _single_threaded_torch() -> None:
    import torch

    torch.set_num_threads(1)


def write_summary(out_dir: str | Path, outcomes: Sequence[SlideOutcome]) -> None:
    """``summary.csv`` and ``summary.json``: one row per slide, atomically."""
    out_dir = Path(out_dir)
    rows = [asdict(o) for o in outcomes]
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "no tissue", "failed")
    }
    write_text_atomic(
        out_dir / "summary.json", json.dumps({"counts": counts, "slides": rows}, indent=1)
    )
    buffer = io.StringIO()
    columns = ["slide", "slide_id", "status", "predicted_class", "seconds", "error"]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "seconds": f"{row['seconds']:.2f}"})
    write_text_atomic(out_dir / "summary.csv", buffer.getvalue())


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
