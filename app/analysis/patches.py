"""The patch grid: square patches asked for in µm/px and pixels, placed in level-0 pixels.

A patch of ``patch_px`` pixels at ``target_mpp`` µm/px covers
``patch_px * target_mpp / slide_mpp`` level-0 pixels. It is read from the coarsest level
that is still at least as fine as ``target_mpp`` (so nothing is upsampled) and resized to
``patch_px``. Only patches whose tissue share reaches ``min_tissue`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from slidescope.app.analysis.tissue import TissueMask, tissue_share_per_patch
from slidescope.app.slides.slide import Slide


@dataclass(frozen=True)
class PatchGrid:
    """Where the patches of one slide are and how they are read.

    Attributes
    ----------
    target_mpp : float
        Resolution of a patch as the extractor sees it, µm/px.
    patch_px : int
        Side of a patch in pixels at ``target_mpp``.
    overlap_px : int
        Overlap of neighbouring patches in pixels at ``target_mpp``.
    slide_mpp : tuple of float
        Level-0 µm/px (x, y).
    slide_size : tuple of int
        Level-0 (width, height).
    patch_size_level0 : int
        Side of a patch in level-0 px.
    stride_level0 : int
        Step between neighbouring patches in level-0 px.
    read_level : int
        Pyramid level patches are read from.
    read_downsample : float
        Downsample of ``read_level``.
    read_size : int
        Side of a patch in ``read_level`` pixels (resized to ``patch_px`` after reading).
    coords : ndarray
        ``(N, 2)`` int64 level-0 (x, y) of each kept patch's top-left corner, row-major.
    tissue_share : ndarray
        ``(N,)`` float32 tissue share of each kept patch.
    """

    target_mpp: float
    patch_px: int
    overlap_px: int
    slide_mpp: tuple[float, float]
    slide_size: tuple[int, int]
    patch_size_level0: int
    stride_level0: int
    read_level: int
    read_downsample: float
    read_size: int
    coords: np.ndarray = field(repr=False)
    tissue_share: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.coords)

    def geometry(self) -> dict[str, Any]:
        """What fixes the grid (stored with features; equal geometry = same patches)."""
        return {
            "target_mpp": float(self.target_mpp),
            "patch_size": int(self.patch_px),
            "overlap": int(self.overlap_px),
            "patch_size_level0": int(self.patch_size_level0),
            "read_level": int(self.read_level),
        }


def plan_patch_geometry(
    slide: Slide, target_mpp: float = 0.5, patch_px: int = 256, overlap_px: int = 0
) -> dict[str, Any]:
    """Sizes and read level of a grid on ``slide`` (no tissue needed).

    Raises
    ------
    MissingMppError
        When the slide does not know its mpp (tells to pass ``--slide-mpp``).
    ValueError
        When sizes make no sense (overlap >= patch, non-positive sizes).
    """
    if patch_px <= 0 or target_mpp <= 0:
        raise ValueError(f"patch size ({patch_px}) and target mpp ({target_mpp}) must be > 0")
    if not 0 <= overlap_px < patch_px:
        raise ValueError(f"overlap ({overlap_px} px) must be >= 0 and < the patch ({patch_px} px)")
    slide_mpp = slide.require_mpp()
    mpp0 = float(np.mean(slide_mpp))
    scale = target_mpp / mpp0  # level-0 px per target px
    size0 = max(1, round(patch_px * scale))
    stride0 = max(1, round((patch_px - overlap_px) * scale))
    level = slide.best_level_for_downsample(max(scale, 1.0))
    downsample = slide.downsamples[level]
    read_size = max(1, round(size0 / downsample))
    return {
        "target_mpp": float(target_mpp),
        "patch_px": int(patch_px),
        "overlap_px": int(overlap_px),
        "slide_mpp": (float(slide_mpp[0]), float(slide_mpp[1])),
        "slide_size": slide.dimensions,
        "patch_size_level0": int(size0),
        "stride_level0": int(stride0),
        "read_level": int(level),
        "read_downsample": float(downsample),
        "read_size": int(read_size),
    }


def make_patch_grid(
    slide: Slide,
    tissue: TissueMask | None,
    target_mpp: float = 0.5,
    patch_px: int = 256,
    overlap_px: int = 0,
    min_tissue: float = 0.5,
) -> PatchGrid:
    """Lay the grid over ``slide`` and keep the patches with enough tissue.

    Parameters
    ----------
    slide : Slide
        The slide (its mpp is required).
    tissue : TissueMask or None
        The tissue mask; None keeps every patch (tissue share 1).
    target_mpp, patch_px, overlap_px : float, int, int
        Grid resolution, patch side and overlap, in target pixels.
    min_tissue : float
        Minimum tissue share in [0, 1] for a patch to be kept.
    """
    plan = plan_patch_geometry(slide, target_mpp, patch_px, overlap_px)
    width, height = plan["slide_size"]
    stride, size0 = plan["stride_level0"], plan["patch_size_level0"]
    # whole patches inside the slide only (as CLAM): no patch is half glass by construction
    xs = np.arange(0, max(width - size0, 0) + 1, stride, dtype=np.int64)
    ys = np.arange(0, max(height - size0, 0) + 1, stride, dtype=np.int64)
    if width < size0 or height < size0:
        xs, ys = xs[:0], ys[:0]
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    coords = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    if tissue is None:
        share = np.ones(len(coords), dtype=np.float32)
    else:
        share = tissue_share_per_patch(tissue, coords, size0)
    keep = share >= min_tissue if min_tissue > 0 else np.ones(len(coords), dtype=bool)
    return PatchGrid(coords=coords[keep], tissue_share=share[keep], **plan)
