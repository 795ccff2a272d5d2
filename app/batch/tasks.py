"""The per-slide task of ``extract``: one slide's features, on whichever process runs it.

The extractor is built once per process (worker) and reused for every slide it takes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slidescope.app.analysis.extract import (
    ExtractConfig,
    build_extractor,
    extract_features,
    resolve_device,
)
from slidescope.app.batch.outcomes import SlideOutcome, failed_outcome
from slidescope.app.slides.slide import slide_id_of
from slidescope.models.files import remove_stale_temps

_EXTRACTORS: dict[tuple[Any, ...], Any] = {}


@dataclass(frozen=True)
class ExtractTask:
    """One slide's extraction; small and picklable (it travels to Dask workers)."""

    slide: str
    out_dir: str
    config: ExtractConfig


def wants_gpu(config: ExtractConfig) -> bool:
    """Whether extraction asks for a GPU (``auto`` takes one where a worker offers it)."""
    return config.device != "cpu"


def shared_extractor(config: ExtractConfig) -> Any:
    """The configured extractor, built once per process and device."""
    device = resolve_device(config.device)
    key = (
        config.extractor, str(config.weights), str(device), config.allow_random_weights,
        config.compile,
    )  # fmt: skip
    if key not in _EXTRACTORS:
        _EXTRACTORS.clear()  # one extractor per process: GPU memory is not held twice
        _EXTRACTORS[key] = build_extractor(config, device)
    return _EXTRACTORS[key]


def run_extract_task(task: ExtractTask) -> SlideOutcome:
    """Extract one slide's features; every error of the slide becomes a ``failed`` outcome."""
    start = time.perf_counter()
    slide_id = slide_id_of(task.slide)
    remove_stale_temps(task.out_dir)  # left by a writer killed in an earlier run
    up_to_date, patches = False, 0
    try:
        extractor = shared_extractor(task.config)
        job = extract_features(task.slide, task.out_dir, task.config, extractor)
        for step in job:
            up_to_date = up_to_date or bool(step.metrics.get("up_to_date"))
            patches = step.total or patches
        empty = patches == 0
    except Exception as error:  # a bug on one slide must not stop a cohort
        return failed_outcome(task.slide, error, time.perf_counter() - start)
    status = "skipped" if up_to_date else ("no tissue" if empty else "done")
    made = Path(task.out_dir) / f"{slide_id}.h5"
    return SlideOutcome(
        task.slide, slide_id, status, seconds=time.perf_counter() - start, patches=patches,
        files=[made.name], finished_at=made.stat().st_mtime if made.exists() else time.time(),
    )  # fmt: skip


@dataclass(frozen=True)
class TissueTask:
    """One slide's tissue mask (``slidescope tissue``)."""

    slide: str
    out_dir: str
    slide_mpp: float | None = None
    roi: str | None = None
    roi_mode: str = "intersect"


def run_tissue_task(task: TissueTask) -> SlideOutcome:
    """Detect one slide's tissue and write its PNG and GeoJSON; errors become ``failed``."""
    from slidescope.app.analysis.roi import load_roi
    from slidescope.app.analysis.tissue import detect_tissue, write_tissue_files
    from slidescope.app.slides import open_slide

    start = time.perf_counter()
    remove_stale_temps(task.out_dir)
    try:
        roi = None if task.roi is None else load_roi(task.roi)
        with open_slide(task.slide, mpp=task.slide_mpp) as slide:
            tissue = detect_tissue(slide, roi=roi, roi_mode=task.roi_mode)  # type: ignore[arg-type]
            files = write_tissue_files(tissue, task.out_dir, slide.identity.slide_id)
    except Exception as error:  # a bug on one slide must not stop a cohort
        return failed_outcome(task.slide, error, time.perf_counter() - start)
    status = "done" if tissue.tissue_share > 0 else "no tissue"
    return SlideOutcome(
        task.slide, slide_id_of(task.slide), status, seconds=time.perf_counter() - start,
        files=[Path(p).name for p in files], finished_at=time.time(),
    )  # fmt: skip
