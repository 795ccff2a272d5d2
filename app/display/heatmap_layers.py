"""Heatmap layers of an analysis: one RGBA image per score, placed on the patch grid.

Colours come from the same core functions the exports use
(:func:`~slidescope.app.analysis.heatmaps.display_grid` then
:func:`~slidescope.app.analysis.heatmaps.colorize`), so what the window shows is what
``slidescope export`` writes. Each image pixel is one grid cell, placed in level-0 pixels by
:func:`~slidescope.app.display.placement.grid_placement`. No napari import: plain layer data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from slidescope.app.analysis.heatmaps import (
    KIND_TITLES,
    DisplayChoices,
    HeatmapGrid,
    colorize,
    display_grid,
    kind_scores,
    value_range,
)
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.display.placement import SlideSpace, grid_placement

#: the layers a user can switch on, in the order they are stacked (first lowest)
LAYER_KINDS: tuple[tuple[str, str], ...] = tuple(KIND_TITLES.items())
METADATA_KEY = "slidescope-heatmap"


@dataclass(frozen=True)
class HeatmapLayer:
    """One heatmap as napari layer data.

    Attributes
    ----------
    name : str
        The layer's name, e.g. ``"attention"``, ``"prob_lesion"``, ``"hard_attention"``.
    grid : HeatmapGrid
        The displayed values (after hiding, smoothing and normalisation; before threshold).
    rgba : ndarray
        (rows, cols, 4) uint8 image, transparent where no patch or below the threshold.
    kwargs : dict
        ``add_image`` keyword arguments (placement, opacity, metadata).
    """

    name: str
    grid: HeatmapGrid
    rgba: np.ndarray
    kwargs: dict[str, Any]


def heatmap_layers(
    analysis: SlideAnalysis,
    kind: str,
    display: DisplayChoices,
    space: SlideSpace,
    class_name: str | None = None,
) -> list[HeatmapLayer]:
    """The layers of one heatmap kind (``prob``: one per class, or only ``class_name``)."""
    binary = kind == "masked"
    hide = analysis.masked if kind == "hard" else None
    layers = []
    for name, scores in kind_scores(analysis, kind).items():
        if kind == "prob" and class_name is not None and name != f"prob_{class_name}":
            continue
        grid = display_grid(analysis, scores, display, binary=binary, hide=hide)
        values = grid.values
        if display.threshold is not None and not binary:
            values = np.where(values >= display.threshold, values, np.nan)
        if binary:
            values = np.where(values > 0.5, 1.0, np.nan)  # only the masked set is painted
        low, high = (0.0, 1.0) if binary else value_range(grid.values)
        rgba = colorize(values, display.colormap, vmin=low, vmax=high)
        kwargs = {
            "name": name,
            "rgb": True,
            "opacity": display.opacity,
            "interpolation2d": "nearest",
            "blending": "translucent",
            "metadata": {METADATA_KEY: {"kind": kind, "display": display.to_dict()}},
            **grid_placement(space, grid.origin, grid.cell).kwargs,
        }
        layers.append(HeatmapLayer(name=name, grid=grid, rgba=rgba, kwargs=kwargs))
    return layers


def patch_at(analysis: SlideAnalysis, x: float, y: float) -> int | None:
    """Index of the patch covering level-0 ``(x, y)``, or None."""
    if analysis.n_patches == 0:
        return None
    size = analysis.patch_size_level0
    coords = analysis.coords
    inside = (
        (coords[:, 0] <= x)
        & (x < coords[:, 0] + size)
        & (coords[:, 1] <= y)
        & (y < coords[:, 1] + size)
    )
    hits = np.flatnonzero(inside)
    return int(hits[0]) if hits.size else None


def describe_patch(analysis: SlideAnalysis, index: int) -> str:
    """One line on a patch: where it is and its scores."""
    x, y = (int(v) for v in analysis.coords[index])
    parts = [
        f"patch at x {x:,} y {y:,} ({analysis.patch_size_level0} px)",
        f"attention {analysis.attention[index]:.4g}",
        f"hard attention {analysis.hard_attention[index]:.4g}",
    ]
    if analysis.masked[index]:
        parts.append("masked (salient)")
    for i, name in enumerate(analysis.class_names):
        parts.append(f"p({name}) {analysis.instance_probs[index, i]:.3f}")
    return ", ".join(parts)
