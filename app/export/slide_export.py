"""Every export of one analysed slide: PNG overlays, pyramidal overlays, GeoJSON and CSV.

Files land in ``<out>/<slide_id>/``, named ``<slide_id>.<layer>.png``,
``<slide_id>.<layer>.ome.tif`` (or ``.ome.zarr``), ``<slide_id>.geojson`` and
``<slide_id>.scores.csv``; ``<slide_id>.done.json``, written last, lists them and marks the
slide finished, so a resumed batch skips it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.analysis.heatmaps import (
    KINDS,
    DisplayChoices,
    HeatmapGrid,
    display_grid,
    kind_scores,
    value_range,
)
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.errors import SettingsError
from slidescope.app.export.csv_export import metadata_path, write_scores_csv
from slidescope.app.export.geojson_export import write_geojson
from slidescope.app.export.png_overlay import write_png_overlay
from slidescope.app.export.provenance import export_metadata
from slidescope.app.export.pyramid_overlay import write_ome_tiff_overlay, write_ome_zarr_overlay
from slidescope.app.jobs import Job, Progress
from slidescope.models.files import write_text_atomic

OVERLAY_FORMATS: tuple[str, ...] = ("ome-tiff", "ome-zarr", "none")


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how it looks.

    Attributes
    ----------
    kinds : tuple of str
        Heatmap kinds among ``attention``, ``hard``, ``masked``, ``prob``.
    display : DisplayChoices
    overlay_format : {"ome-tiff", "ome-zarr", "none"}
    thumbnail_size : int
        Longer side of the PNG overlays' thumbnail.
    """

    kinds: tuple[str, ...] = KINDS
    display: DisplayChoices = field(default_factory=DisplayChoices)
    overlay_format: str = "ome-tiff"
    thumbnail_size: int = 1024

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise SettingsError(
                f"unknown heatmap kind(s) {', '.join(map(repr, unknown)) or 'none given'}; "
                f"choose from {', '.join(KINDS)}"
            )
        if self.thumbnail_size < 16:
            raise SettingsError(f"thumbnail size must be >= 16 px, got {self.thumbnail_size}")
        if self.overlay_format not in OVERLAY_FORMATS:
            raise SettingsError(
                f"unknown overlay format {self.overlay_format!r}; "
                f"choose one of {', '.join(OVERLAY_FORMATS)}"
            )


def slide_folder(out_dir: str | Path, slide_id: str) -> Path:
    return Path(out_dir) / slide_id


def done_marker(out_dir: str | Path, slide_id: str) -> Path:
    """The file whose presence says a slide's export is complete."""
    return slide_folder(out_dir, slide_id) / f"{slide_id}.done.json"


def export_analysis(
    analysis: SlideAnalysis,
    thumbnail: np.ndarray,
    out_dir: str | Path,
    options: ExportOptions | None = None,
) -> list[Path]:
    """Write every chosen export of ``analysis``; returns the files, done marker last.

    Parameters
    ----------
    analysis : SlideAnalysis
    thumbnail : ndarray
        (h, w, 3) uint8 image of the whole slide, under the PNG overlays.
    out_dir : path
        The batch's output folder; this slide's files go to ``out_dir/<slide_id>/``.
    options : ExportOptions
    """
    options = options or ExportOptions()
    identity = analysis.identity
    folder = slide_folder(out_dir, identity.slide_id)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / identity.slide_id
    display = options.display
    slide_size = (identity.width, identity.height)
    written: list[Future[Any]] = []
    measurements: dict[str, np.ndarray] = {}
    contour_grids: dict[str, tuple[HeatmapGrid, float]] = {}
    # PNG and overlay encoding (zlib, tifffile) release the GIL: images are encoded on
    # threads while the next layer is computed; the pool never outlives this call
    pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), "slidescope-export")
    try:
        for kind in options.kinds:
            binary = kind == "masked"
            for layer, scores in kind_scores(analysis, kind).items():
                hide = analysis.masked if kind == "hard" else None
                grid = display_grid(analysis, scores, display, binary=binary, hide=hide)
                vrange = (0.0, 1.0) if binary else value_range(grid.values)
                meta = export_metadata(analysis, display, layer=layer, value_range=vrange)
                measurements[layer] = scores
                if not binary and display.normalisation != "raw":
                    measurements[f"{layer} ({display.normalisation})"] = _per_patch(
                        analysis, grid
                    )
                threshold = 0.5 if binary else display.threshold
                if threshold is not None:
                    contour_grids[layer] = (grid, threshold)
                written.append(
                    pool.submit(
                        write_png_overlay,
                        f"{stem}.{layer}.png",
                        thumbnail,
                        grid,
                        slide_size,
                        meta,
                        colormap=display.colormap,
                        opacity=display.opacity,
                        title=layer,
                        vrange=vrange,
                    )
                )
                written.append(
                    pool.submit(_write_overlay, stem, layer, grid, analysis, meta, options, vrange)
                )
        # the GeoJSON and the CSV are written while the images are still being encoded
        metadata = export_metadata(analysis, display)
        geojson = f"{stem}.geojson"
        written.append(
            pool.submit(write_geojson, geojson, analysis, measurements, contour_grids, metadata)
        )
        scores_csv = write_scores_csv(f"{stem}.scores.csv", analysis, metadata)
        files = [*_results(written), scores_csv, metadata_path(scores_csv)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    marker = done_marker(out_dir, identity.slide_id)
    record: dict[str, Any] = {
        **metadata,
        "kinds": list(options.kinds),
        "overlay_format": options.overlay_format,
        "patches": analysis.n_patches,
        "files": [p.name for p in files],
    }
    write_text_atomic(marker, json.dumps(record, indent=1))
    return [*files, marker]


def _results(futures: Sequence[Future[Any]]) -> list[Path]:
    """The files the writers made, in submission order (a writer's error is raised here)."""
    files: list[Path] = []
    for future in futures:
        result = future.result()
        if isinstance(result, Path):
            files.append(result)
        else:
            files.extend(result)
    return files


def _per_patch(analysis: SlideAnalysis, grid: HeatmapGrid) -> np.ndarray:
    """The displayed value of each patch, read back from its cell."""
    if analysis.n_patches == 0:
        return np.zeros(0, np.float32)
    rows, cols = grid.cell_of(analysis.coords)
    return grid.values[rows, cols]


def _write_overlay(
    stem: Path,
    layer: str,
    grid: HeatmapGrid,
    analysis: SlideAnalysis,
    meta: dict[str, Any],
    options: ExportOptions,
    vrange: tuple[float, float],
) -> Sequence[Path]:
    identity = analysis.identity
    slide_size = (identity.width, identity.height)
    if options.overlay_format == "ome-tiff":
        path = write_ome_tiff_overlay(
            f"{stem}.{layer}.ome.tif",
            grid,
            slide_size,
            identity.mpp,
            meta,
            colormap=options.display.colormap,
            opacity=options.display.opacity,
            vrange=vrange,
        )
        return [path]
    if options.overlay_format == "ome-zarr":
        return [
            write_ome_zarr_overlay(
                f"{stem}.{layer}.ome.zarr", grid, slide_size, identity.mpp, meta
            )
        ]
    return []


def export_slide(
    slide: Any, analysis: SlideAnalysis, out_dir: str | Path, options: ExportOptions
) -> Job[list[Path]]:
    """Export one analysed slide that is already open (the window's "Export").

    Writes what :func:`export_analysis` writes, over the slide's own thumbnail.
    """
    yield Progress(0, 2, "thumbnail")
    thumbnail = np.asarray(slide.thumbnail(options.thumbnail_size))
    yield Progress(1, 2, "writing heatmaps, GeoJSON and CSV")
    files = export_analysis(analysis, thumbnail, Path(out_dir), options)
    yield Progress(2, 2, "done")
    return files
