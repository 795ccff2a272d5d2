"""Heatmap layers of an analysis: one float image per score, coloured by an alpha-ramp colormap.

A heatmap layer holds the displayed scores themselves (one image pixel per grid cell, placed in
level-0 pixels by :func:`~slidescope.app.display.placement.grid_placement`), not a painted RGBA
picture. So a display change updates the layer in place: opacity is the layer's opacity, the
colormap and the threshold are its colormap (cells below the threshold are transparent in it),
and only normalisation and smoothing change its data. Low scores fade out through an alpha ramp
in the colormap (:func:`ramp_colors`): below a floor a cell is transparent, so the tissue under a
low score stays visible instead of being veiled in the colormap's darkest colour.

Scores come from the same core functions the exports use
(:func:`~slidescope.app.analysis.heatmaps.display_grid`). No napari import: plain layer data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from slidescope.app.analysis.heatmaps import (
    KIND_TITLES,
    DisplayChoices,
    HeatmapGrid,
    colormap_lut,
    display_grid,
    kind_scores,
    patch_grid,
    value_range,
)
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.display.placement import SlideSpace, grid_placement

#: the layers a user can switch on, in the order they are stacked (first lowest)
LAYER_KINDS: tuple[tuple[str, str], ...] = tuple(KIND_TITLES.items())
METADATA_KEY = "slidescope-heatmap"
#: hard-instance attention always has its own look, so it is never mistaken for attention
HARD_COLORMAP = "cool"
#: the one colour of the masked salient set (a set, not a score)
MASKED_COLOR = (1.0, 1.0, 1.0)
#: share of the colour range under which a cell is transparent, and the share over which the
#: alpha then rises to full: low scores fade out instead of painting the tissue dark
FLOOR = 0.15
RAMP = 0.25


@dataclass(frozen=True)
class HeatmapLayer:
    """One heatmap as napari layer data.

    Attributes
    ----------
    name : str
        The layer's name, e.g. ``"attention"``, ``"prob_lesion"``, ``"hard_attention"``.
    kind : str
        The heatmap kind (see :data:`LAYER_KINDS`).
    grid : HeatmapGrid
        The displayed values (after hiding, smoothing and normalisation; before threshold).
    data : ndarray
        (rows, cols) float32 image: the grid's values, empty cells below the colour range.
    contrast_limits : tuple of float
        The colour range (the finite values' range; 0..1 for a binary layer).
    colors : ndarray
        (256, 4) float RGBA colormap over the colour range, with its alpha ramp.
    colormap_name : str
        A name unique to ``colors`` (napari keeps colormaps by name).
    kwargs : dict
        ``add_image`` keyword arguments (placement, opacity, metadata; no colormap).
    """

    name: str
    kind: str
    grid: HeatmapGrid
    data: np.ndarray
    contrast_limits: tuple[float, float]
    colors: np.ndarray
    colormap_name: str
    kwargs: dict[str, Any]


def kind_colormap(kind: str, display: DisplayChoices) -> str:
    """The colormap a kind is drawn with: the user's, except hard-instance's own."""
    return HARD_COLORMAP if kind == "hard" else display.colormap


def heatmap_layers(
    analysis: SlideAnalysis,
    kind: str,
    display: DisplayChoices,
    space: SlideSpace,
    class_name: str | None = None,
) -> list[HeatmapLayer]:
    """The layers of one heatmap kind (``prob``: one per class, or only ``class_name``)."""
    layers = []
    for name, scores in kind_scores(analysis, kind).items():
        if kind == "prob" and class_name is not None and name != f"prob_{class_name}":
            continue
        grid = kind_grid(analysis, kind, scores, display)
        data, limits = layer_values(grid, binary=kind == "masked")
        colors, cmap_name = layer_colors(kind, display, limits)
        kwargs = {
            "name": name,
            "opacity": display.opacity,
            "interpolation2d": "nearest",
            "blending": "translucent",
            "metadata": {METADATA_KEY: {"kind": kind, "display": display.to_dict()}},
            **grid_placement(space, grid.origin, grid.cell).kwargs,
        }
        layers.append(HeatmapLayer(name, kind, grid, data, limits, colors, cmap_name, kwargs))
    return layers


def kind_grid(
    analysis: SlideAnalysis, kind: str, scores: np.ndarray, display: DisplayChoices
) -> HeatmapGrid:
    """The displayed grid of one score (what normalisation and smoothing change)."""
    hide = analysis.masked if kind == "hard" else None
    return display_grid(analysis, scores, display, binary=kind == "masked", hide=hide)


def layer_values(
    grid: HeatmapGrid, binary: bool = False
) -> tuple[np.ndarray, tuple[float, float]]:
    """Image data and colour range of a grid: empty cells go below the range (transparent)."""
    low, high = (0.0, 1.0) if binary else value_range(grid.values)
    if high <= low:  # one value everywhere: give it a range whose top it sits on
        low, high = high - 1.0, high
    below = low - (high - low)
    data = np.where(np.isfinite(grid.values), grid.values, below).astype(np.float32)
    return data, (float(low), float(high))


def layer_colors(
    kind: str, display: DisplayChoices, limits: tuple[float, float]
) -> tuple[np.ndarray, str]:
    """The (256, 4) colormap of a layer over ``limits`` and a name unique to it.

    The threshold (in displayed values) becomes the colormap's transparent part, so changing
    it recolours the layer without touching its data.
    """
    low, high = limits
    cut = FLOOR
    if display.threshold is not None and kind != "masked":
        cut = max(cut, (float(display.threshold) - low) / (high - low))
    cut = float(min(max(cut, 0.0), 1.0))
    name = "masked" if kind == "masked" else kind_colormap(kind, display)
    return ramp_colors(name, round(cut, 4)), f"slidescope-{name}-{cut:.4f}"


@functools.lru_cache(maxsize=64)
def ramp_colors(colormap: str, cut: float = FLOOR) -> np.ndarray:
    """A matplotlib colormap (or ``"masked"``) as 256 RGBA rows with an alpha ramp.

    Transparent below ``cut`` (a share of the colour range); from there the alpha rises
    linearly to 1 over :data:`RAMP` of the range. ``"masked"`` is one colour, opaque in the
    upper half (the masked set's 1s) and transparent below. Read-only, shared.
    """
    t = np.linspace(0.0, 1.0, 256)
    if colormap == "masked":
        colors = np.zeros((256, 4))
        colors[:, :3] = MASKED_COLOR
        colors[:, 3] = (t >= 0.5).astype(float)
    else:
        colors = colormap_lut(colormap).astype(float) / 255.0
        # a high threshold leaves less room: the ramp shortens so its top is still opaque
        span = min(RAMP, max(1.0 - cut, 1e-6) / 2)
        ramp = np.clip((t - cut) / span, 0.0, 1.0) if cut < 1.0 else np.zeros_like(t)
        ramp[t < cut] = 0.0
        colors[:, 3] = ramp
    colors.flags.writeable = False
    return colors


def legend_stops(layer: HeatmapLayer, n: int = 5) -> list[tuple[float, str]]:
    """``n`` evenly spaced (share of the bar, value label) pairs for a colour-bar legend."""
    low, high = layer.contrast_limits
    if layer.kind == "masked":
        return [(1.0, "patches the teacher masks")]
    return [(i / (n - 1), f"{low + (high - low) * i / (n - 1):.3g}") for i in range(n)]


# -- reading patches -----------------------------------------------------------------------


class PatchIndex:
    """Which patch covers a level-0 point, in constant time (a grid of patch numbers).

    Built once per analysis: a hover read-out at 20,000 patches is a grid lookup, not a scan.
    """

    def __init__(self, analysis: SlideAnalysis) -> None:
        self.analysis = analysis
        n = analysis.n_patches
        # float64 holds every patch number exactly
        self.grid = patch_grid(
            analysis.coords, np.arange(n, dtype=np.float64), analysis.patch_size_level0
        )
        numbers: np.ndarray = np.full(self.grid.values.shape, -1, dtype=np.int64)
        if n:
            rows, cols = self.grid.cell_of(analysis.coords)
            numbers[rows, cols] = np.arange(n)
        self.numbers = numbers

    def at(self, x: float, y: float) -> int | None:
        """Index of the patch covering level-0 ``(x, y)``, or None."""
        if self.analysis.n_patches == 0:
            return None
        grid = self.grid
        col = math.floor((x - grid.origin[0]) / grid.cell)
        row = math.floor((y - grid.origin[1]) / grid.cell)
        if not (0 <= row < self.numbers.shape[0] and 0 <= col < self.numbers.shape[1]):
            return None
        index = int(self.numbers[row, col])
        if index < 0:
            return None
        px, py = self.analysis.coords[index]
        size = self.analysis.patch_size_level0
        return index if px <= x < px + size and py <= y < py + size else None


def patch_at(analysis: SlideAnalysis, x: float, y: float) -> int | None:
    """Index of the patch covering level-0 ``(x, y)``, or None (a scan; see :class:`PatchIndex`)."""
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


def hover_text(analysis: SlideAnalysis, index: int) -> str:
    """A short read-out for the cursor: the scores, one per line."""
    lines = [
        f"attention {analysis.attention[index]:.3g}",
        f"hard attention {analysis.hard_attention[index]:.3g}"
        + ("  (masked: salient)" if analysis.masked[index] else ""),
    ]
    lines += [
        f"p({name}) {analysis.instance_probs[index, i]:.2f}"
        for i, name in enumerate(analysis.class_names)
    ]
    return "\n".join(lines)


def hotspots(analysis: SlideAnalysis, scores: np.ndarray, count: int = 20) -> list[int]:
    """Patches of the highest scores, best first, none within two patches of a better one.

    What "next hotspot" steps through: separate places, not neighbours of one spot.
    """
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-np.where(np.isfinite(scores), scores, -np.inf), kind="stable")
    spacing = 2 * analysis.patch_size_level0
    chosen: list[int] = []
    for index in order:
        if not np.isfinite(scores[index]):
            break
        corner = analysis.coords[index]
        if all(np.abs(analysis.coords[c] - corner).max() > spacing for c in chosen):
            chosen.append(int(index))
            if len(chosen) == count:
                break
    return chosen
