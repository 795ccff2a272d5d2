"""Per-patch scores laid on the patch grid in level-0 space, and the display choices on them.

A heatmap is a :class:`HeatmapGrid`: one cell per patch stride, whose top-left corner sits at
``origin`` (level-0 px) and whose cells are ``cell`` level-0 px wide, with NaN where there
is no patch; a patch covers ``[x, x + size)`` in level-0 space. The viewer places the grid
with :func:`slidescope.app.display.placement.grid_placement` (``origin``, ``cell``).

Normalisation (raw, min-max, rank), smoothing and thresholds are display choices: plain
functions on the grid's values, recorded by every export (DESIGN.md, "Heatmaps").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.errors import SettingsError

Normalisation = Literal["raw", "minmax", "rank"]
NORMALISATIONS: tuple[str, ...] = ("raw", "minmax", "rank")
#: how the window names them (the dock's choices, the colour keys)
NORMALISATION_NAMES = {"raw": "raw", "minmax": "min-max", "rank": "rank"}


@dataclass(frozen=True)
class HeatmapGrid:
    """Scores on the patch grid.

    Attributes
    ----------
    values : ndarray
        (rows, cols) float32; NaN where there is no patch.
    origin : tuple of int
        Level-0 (x, y) of the top-left corner of cell (0, 0).
    cell : int
        Level-0 size of one cell (the patch stride) in pixels.
    patch_size : int
        Level-0 size of one patch (equal to ``cell`` unless patches overlap or leave gaps).
    """

    values: np.ndarray
    origin: tuple[int, int]
    cell: int
    patch_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.values.shape[0]), int(self.values.shape[1])

    def cell_of(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the cells whose top-left corners are level-0 ``coords`` (N, 2)."""
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        cols = (coords[:, 0] - self.origin[0]) // self.cell
        rows = (coords[:, 1] - self.origin[1]) // self.cell
        return rows, cols

    def value_at(self, x: float, y: float) -> float:
        """The score at level-0 ``(x, y)``, NaN outside every patch."""
        col = math.floor((x - self.origin[0]) / self.cell)
        row = math.floor((y - self.origin[1]) / self.cell)
        if 0 <= row < self.values.shape[0] and 0 <= col < self.values.shape[1]:
            return float(self.values[row, col])
        return math.nan

    def with_values(self, values: np.ndarray) -> HeatmapGrid:
        return replace(self, values=np.asarray(values, dtype=np.float32))


def grid_stride(coords: np.ndarray, patch_size_level0: int) -> int:
    """The level-0 step between neighbouring patches of a grid.

    The smallest positive gap between distinct x (or y) corners, or the patch size when
    there is only one column and one row. A grid whose patches overlap has a stride below
    the patch size; one cell per stride keeps every patch its own cell.
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    gaps: list[int] = []
    for axis in (0, 1):
        unique = np.unique(coords[:, axis])
        if unique.size > 1:
            gaps.append(int(np.diff(unique).min()))
    stride = min(gaps) if gaps else int(patch_size_level0)
    # Corners off a common lattice (e.g. a hand-made bag) still need one cell per patch: the
    # greatest common divisor of every offset is a lattice they all sit on.
    if coords.shape[0] > 1:
        offsets = (coords - coords.min(axis=0)).ravel()
        divisor = int(np.gcd.reduce(np.append(offsets, stride)))
        stride = max(1, divisor)
    return int(stride)


def patch_grid(
    coords: np.ndarray,
    values: np.ndarray,
    patch_size_level0: int,
    *,
    stride: int | None = None,
) -> HeatmapGrid:
    """Lay per-patch ``values`` (N,) on the grid of their level-0 ``coords`` (N, 2).

    Parameters
    ----------
    coords : ndarray
        (N, 2) level-0 (x, y) top-left corners.
    values : ndarray
        (N,) scores; booleans become 0/1.
    patch_size_level0 : int
        Level-0 size of one patch.
    stride : int, optional
        Level-0 step of the grid; found from ``coords`` by default.

    Returns
    -------
    HeatmapGrid
        NaN where no patch lies. An empty bag gives a 0 x 0 grid.
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if coords.shape[0] != values.shape[0]:
        raise ValueError(f"{coords.shape[0]} patch corners but {values.shape[0]} scores")
    size = int(patch_size_level0)
    if coords.shape[0] == 0:
        return HeatmapGrid(np.zeros((0, 0), np.float32), (0, 0), size, size)
    cell = int(stride) if stride else grid_stride(coords, size)
    x0, y0 = (int(v) for v in coords.min(axis=0))
    cols = (coords[:, 0] - x0) // cell
    rows = (coords[:, 1] - y0) // cell
    grid = np.full((int(rows.max()) + 1, int(cols.max()) + 1), np.nan, dtype=np.float32)
    grid[rows, cols] = values
    return HeatmapGrid(grid, (x0, y0), cell, size)


def normalise(values: np.ndarray, mode: str = "raw") -> np.ndarray:
    """Rescale scores for display; NaN (no patch) stays NaN.

    Parameters
    ----------
    values : ndarray
        Scores of any shape.
    mode : {"raw", "minmax", "rank"}
        ``raw`` keeps them; ``minmax`` maps min..max to 0..1 (all-equal scores become 0.5);
        ``rank`` replaces each score by its rank share in [0, 1] (ties share their mean
        rank), which spreads attention's long tail evenly over the colormap.
    """
    if mode not in NORMALISATIONS:
        raise SettingsError(
            f"unknown normalisation {mode!r}; choose one of {', '.join(NORMALISATIONS)}"
        )
    out = np.array(values, dtype=np.float32, copy=True)
    finite = np.isfinite(out)
    if mode == "raw" or not finite.any():
        return out
    present = out[finite]
    if mode == "minmax":
        low, high = float(present.min()), float(present.max())
        out[finite] = (present - low) / (high - low) if high > low else 0.5
        return out
    from scipy.stats import rankdata

    n = present.size
    ranks = rankdata(present, method="average")
    out[finite] = (ranks - 1) / (n - 1) if n > 1 else 0.5
    return out


def smooth(grid: HeatmapGrid, sigma_cells: float = 1.0) -> HeatmapGrid:
    """A Gaussian-smoothed copy that ignores empty cells and keeps them empty.

    The smoothing is normalised by the smoothed presence mask, so scores at the tissue's
    edge are not pulled towards zero by the background.
    """
    values = grid.values
    if values.size == 0 or sigma_cells <= 0:
        return grid
    from scipy.ndimage import gaussian_filter

    present = np.isfinite(values)
    filled = np.where(present, values, 0.0).astype(np.float32)
    weight = gaussian_filter(present.astype(np.float32), sigma_cells, mode="constant")
    blurred = gaussian_filter(filled, sigma_cells, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(present, blurred / np.maximum(weight, 1e-12), np.nan)
    return grid.with_values(out.astype(np.float32))


def threshold_mask(values: np.ndarray, threshold: float) -> np.ndarray:
    """True where a (finite) score is at least ``threshold``."""
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= threshold)


def contours(grid: HeatmapGrid, threshold: float) -> list[list[np.ndarray]]:
    """Outlines of the regions whose score is at least ``threshold``, in level-0 px.

    Returns
    -------
    list of polygons
        One polygon per connected region: ``[exterior, *holes]``, each ring (K, 2) level-0
        (x, y), closed (first point repeated last), tracing the cell edges (cut diagonally
        at corners).
    """
    mask = threshold_mask(grid.values, threshold)
    if not mask.any():
        return []
    from scipy import ndimage
    from skimage.measure import find_contours

    # One pass over the whole grid: padding closes regions at the border, and the 0.5 level
    # of a binary mask runs between cell centres, i.e. along the cell edges. Rings wind
    # counter-clockwise around regions and clockwise around holes, and each ring borders
    # cells of exactly one region, whose label says which polygon the ring belongs to.
    padded = np.pad(mask, 1)
    labels, _ = ndimage.label(padded)
    exteriors: dict[int, np.ndarray] = {}
    holes: dict[int, list[np.ndarray]] = {}
    for ring in find_contours(padded.astype(np.float32), 0.5, positive_orientation="high"):
        label = _bordering_label(ring, labels)
        points = _to_level0(ring, grid)
        if _signed_area(ring) > 0:
            holes.setdefault(label, []).append(points)
        elif label not in exteriors or len(points) > len(exteriors[label]):
            exteriors[label] = points
    return [[exteriors[k], *holes.get(k, [])] for k in sorted(exteriors)]


def _bordering_label(ring: np.ndarray, labels: np.ndarray) -> int:
    """The region label of the cells a contour ring runs along."""
    for row, col in ring[:4]:
        for r, c in {
            (int(np.floor(row)), int(np.floor(col))),
            (int(np.ceil(row)), int(np.ceil(col))),
        }:
            if labels[r, c]:
                return int(labels[r, c])
    return 0


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area in (row, col) axes: positive for the holes of find_contours' "high"."""
    rows, cols = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(rows[1:], cols[:-1]) - np.dot(cols[1:], rows[:-1]))


def _to_level0(ring: np.ndarray, grid: HeatmapGrid) -> np.ndarray:
    # ring is (row, col) in padded cells; cell edges fall on half-integers
    points = (ring[:, ::-1] - 0.5) * grid.cell + grid.origin
    if not np.array_equal(points[0], points[-1]):
        points = np.vstack([points, points[:1]])
    return points


def colorize(
    values: np.ndarray,
    colormap: str = "turbo",
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    opacity: float = 1.0,
) -> np.ndarray:
    """RGBA uint8 image of ``values`` through a matplotlib colormap; NaN is transparent.

    ``vmin``/``vmax`` default to the finite range (0..1 when the values are empty).
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if vmin is None or vmax is None:
        low, high = value_range(values)
        vmin = low if vmin is None else vmin
        vmax = high if vmax is None else vmax
    span = vmax - vmin if vmax > vmin else 1.0
    index = np.clip((values - vmin) * (255.0 / span) + 0.5, 0, 255)
    rgba = colormap_lut(colormap)[np.where(finite, index, 0).astype(np.uint8)]
    rgba[..., 3] = np.where(finite, np.uint8(round(255 * opacity)), np.uint8(0))
    return rgba


@functools.lru_cache(maxsize=16)
def colormap_lut(colormap: str) -> np.ndarray:
    """(256, 4) uint8 RGBA table of a matplotlib colormap (read-only, shared)."""
    import matplotlib

    lut = (matplotlib.colormaps[colormap](np.linspace(0, 1, 256)) * 255).round().astype(np.uint8)
    lut.flags.writeable = False
    return lut


def value_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, (0, 1) when there are none."""
    values = np.asarray(values)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


# -- heatmap kinds of an analysis, and the display choices applied to them -------------------

#: every heatmap kind of an analysis with its title, in the order the window stacks their
#: layers (first lowest); exports and the CLI take the same names
KIND_TITLES: dict[str, str] = {
    "attention": "Attention",
    "prob": "Class probability",
    "masked": "Masked salient set",
    "hard": "Hard-instance attention",
}
KINDS: tuple[str, ...] = tuple(KIND_TITLES)


@dataclass(frozen=True)
class DisplayChoices:
    """How scores are shown; recorded with every export.

    Attributes
    ----------
    normalisation : {"raw", "minmax", "rank"}
    smooth : bool
        Gaussian smoothing of ``sigma_cells`` cells (NaN-aware).
    threshold : float or None
        Contours and the thresholded view keep displayed scores >= this.
    colormap : str
        A matplotlib colormap name.
    opacity : float
        Alpha of the overlay, 0..1.
    sigma_cells : float
    """

    normalisation: str = "minmax"
    smooth: bool = False
    threshold: float | None = None
    colormap: str = "turbo"
    opacity: float = 0.5
    sigma_cells: float = 1.0

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise SettingsError(
                f"unknown normalisation {self.normalisation!r}; "
                f"choose one of {', '.join(NORMALISATIONS)}"
            )
        if not 0.0 <= self.opacity <= 1.0:
            raise SettingsError(f"opacity must lie in [0, 1], got {self.opacity}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise SettingsError(f"threshold must be a number, got {self.threshold}")
        if (
            self.threshold is not None
            and self.normalisation != "raw"
            and not 0.0 <= self.threshold <= 1.0
        ):
            raise SettingsError(
                f"threshold must lie in [0, 1] with {self.normalisation} normalisation (the "
                f"displayed scores run from 0 to 1), got {self.threshold}"
            )
        if not self.sigma_cells > 0:
            raise SettingsError(f"smoothing sigma must be > 0 cells, got {self.sigma_cells}")
        import matplotlib

        if self.colormap not in matplotlib.colormaps:
            raise SettingsError(
                f"unknown colormap {self.colormap!r}; use a matplotlib name such as turbo, "
                "viridis or magma"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "normalisation": self.normalisation,
            "smooth": self.smooth,
            "sigma_cells": self.sigma_cells if self.smooth else 0.0,
            "threshold": self.threshold,
            "colormap": self.colormap,
            "opacity": self.opacity,
        }


def kind_scores(analysis: SlideAnalysis, kind: str) -> dict[str, np.ndarray]:
    """The named per-patch score arrays a heatmap kind shows.

    ``attention`` -> ``attention``; ``hard`` -> ``hard_attention``; ``masked`` -> ``masked``
    (0/1); ``prob`` -> ``prob_<class>`` for every class.
    """
    if kind == "attention":
        return {"attention": analysis.attention}
    if kind == "hard":
        return {"hard_attention": analysis.hard_attention}
    if kind == "masked":
        return {"masked": analysis.masked.astype(np.float32)}
    if kind == "prob":
        return {
            f"prob_{c}": analysis.instance_probs[:, i] for i, c in enumerate(analysis.class_names)
        }
    raise SettingsError(f"unknown heatmap kind {kind!r}; choose from {', '.join(KINDS)}")


def display_grid(
    analysis: SlideAnalysis,
    scores: np.ndarray,
    display: DisplayChoices,
    *,
    binary: bool = False,
    hide: np.ndarray | None = None,
) -> HeatmapGrid:
    """Scores of ``analysis``'s patches on their grid, smoothed then normalised as chosen.

    Normalising last keeps the displayed range what the normalisation promises (0..1 for
    min-max and rank), so a threshold means the same with or without smoothing. A
    ``binary`` layer (the masked set) is a set, not a score: shown as is. Patches in ``hide``
    are left empty: the hard-instance heatmap hides the masked salient set, whose recomputed
    attention is 0 by definition, so the colours spread over the patches still seen.
    """
    if hide is not None:
        scores = np.where(hide, np.nan, np.asarray(scores, dtype=np.float32))
    grid = patch_grid(analysis.coords, scores, analysis.patch_size_level0)
    if binary:
        return grid
    if display.smooth:
        grid = smooth(grid, display.sigma_cells)
    return grid.with_values(normalise(grid.values, display.normalisation))
