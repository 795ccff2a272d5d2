"""Where the tissue is: a mask from a low-resolution level of the slide, and its polygons.

The mask is computed at about 8 µm/px (a few thousand pixels across for any slide, so
memory stays bounded). Glass and background go by colour saturation and optical density
(Otsu where it helps); pen marks (blue, green, black, saturated red) and dark debris are
excluded; holes and specks are handled by morphology and minimum areas given in µm².
Polygons come out in level-0 pixels as GeoJSON, and a region of interest drawn in QuPath
or the app can replace or restrict the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology
from slidescope.app.errors import SettingsError
from slidescope.app.slides.errors import CorruptSlideError
from slidescope.app.slides.slide import Slide
from slidescope.models.files import atomic_path

if TYPE_CHECKING:
    from slidescope.app.analysis.roi import RegionOfInterest


@dataclass(frozen=True)
class TissueParams:
    """How tissue is told from glass, pen and debris.

    Attributes
    ----------
    mask_mpp : float
        Resolution of the mask in µm/px (8-16 is plenty to place 128 µm patches).
    min_saturation : float
        Lowest HSV saturation of tissue; Otsu's threshold is used when it is higher.
    min_optical_density : float
        Lowest summed optical density of tissue (faint tissue with low saturation).
    max_brightness : float
        Pixels brighter than this (mean RGB in [0, 1]) and unsaturated are glass.
    dark_limit : int
        Pixels whose every channel is below this (0-255) are black pen or debris.
    exclude_pen : bool
        Remove blue, green, black and saturated red pen marks.
    pen_margin_um : float
        Width of the border around pen marks and dark debris that is removed with them:
        a patch a marker stroke crosses is ink and tissue mixed, which a model has never
        seen as either (the bundled demo model called normal slides "lesion" from two
        such patches). About a third of a 128 µm patch: a patch the stroke crosses keeps
        less than half its tissue and is dropped.
    closing_um : float
        Radius of the morphological closing that joins nearby tissue fragments.
    min_tissue_area_um2 : float
        Smaller tissue pieces are dropped as specks.
    min_hole_area_um2 : float
        Smaller holes inside tissue are filled.
    """

    mask_mpp: float = 8.0
    min_saturation: float = 0.07
    min_optical_density: float = 0.25
    max_brightness: float = 0.9
    dark_limit: int = 40
    exclude_pen: bool = True
    pen_margin_um: float = 48.0
    closing_um: float = 24.0
    min_tissue_area_um2: float = 40_000.0
    min_hole_area_um2: float = 20_000.0


@dataclass
class TissueMask:
    """A boolean tissue mask and where it lies on the slide.

    Attributes
    ----------
    mask : ndarray of bool
        ``(h, w)``; True where there is tissue.
    downsample : float
        Level-0 pixels per mask pixel (the same in x and y).
    slide_size : tuple of int
        Level-0 (width, height) of the slide.
    """

    mask: np.ndarray
    downsample: float
    slide_size: tuple[int, int]

    @property
    def tissue_share(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def polygons(self, tolerance_px: float = 1.0) -> list[list[np.ndarray]]:
        """Tissue outlines in level-0 px: per piece ``[exterior, *holes]``, each ``(n, 2)`` x, y."""
        return mask_to_polygons(self.mask, self.downsample, tolerance_px)

    def to_geojson(self, classification: str = "Tissue") -> dict[str, Any]:
        """The mask as a GeoJSON FeatureCollection of polygons in level-0 pixels."""
        from slidescope.app.annotations.geojson import polygon_feature

        features = [polygon_feature(rings, classification) for rings in self.polygons()]
        return {"type": "FeatureCollection", "features": features}


def detect_tissue(
    slide: Slide,
    params: TissueParams | None = None,
    roi: RegionOfInterest | dict[str, Any] | None = None,
    roi_mode: Literal["replace", "intersect"] = "intersect",
) -> TissueMask:
    """Compute the tissue mask of ``slide``.

    Parameters
    ----------
    slide : Slide
        The slide; it must know its mpp (:class:`~slidescope.app.errors.MissingMppError`).
    params : TissueParams, optional
        Thresholds and sizes; the defaults suit H&E.
    roi : RegionOfInterest or dict, optional
        A ROI read by :func:`~slidescope.app.analysis.roi.load_roi`, or a GeoJSON
        FeatureCollection (or Feature, or geometry) of polygons in level-0 px. A ROI
        outside the slide is a :class:`~slidescope.app.analysis.roi.RoiError`.
    roi_mode : {"replace", "intersect"}
        ``"replace"``: the ROI is the tissue; ``"intersect"``: tissue inside the ROI only.
    """
    from slidescope.app.analysis.roi import as_roi

    params = params or TissueParams()
    region = as_roi(roi)
    if region is not None and region.polygons:
        region.check_on(slide.dimensions, Path(str(slide.path)).name)
    mpp = float(np.mean(slide.require_mpp()))
    image, downsample = read_low_resolution(slide, params.mask_mpp / mpp)
    shape = image.shape[:2]
    if region is not None and roi_mode == "replace":
        mask = region.mask(shape, downsample)
    else:
        mask = tissue_mask_from_rgb(image, params, downsample * mpp)
        if region is not None:
            if roi_mode != "intersect":
                raise SettingsError(f"roi_mode must be 'replace' or 'intersect', not {roi_mode!r}")
            mask &= region.mask(shape, downsample)
    return TissueMask(mask=mask, downsample=downsample, slide_size=slide.dimensions)


def read_low_resolution(slide: Slide, downsample: float) -> tuple[np.ndarray, float]:
    """The slide at about ``downsample`` (never finer than needed), read in strips.

    Returns the RGB image and its exact level-0 px per image px. When no pyramid level is
    coarse enough, the nearest finer level is block-averaged strip by strip, so memory stays
    bounded even for a slide without a pyramid.
    """
    downsample = max(downsample, 1.0)
    level = slide.best_level_for_downsample(downsample)
    level_ds = slide.downsamples[level]
    factor = max(1, int(downsample / level_ds))
    array = slide.levels[level]
    height, width = int(array.shape[0]), int(array.shape[1])
    out_h, out_w = max(1, height // factor), max(1, width // factor)

    def rows_of(y0: int, y1: int, x1: int) -> np.ndarray:
        try:
            return np.asarray(array[y0:y1, :x1])[..., :3]
        except Exception as error:  # codecs raise anything on damaged bytes
            raise CorruptSlideError(
                slide.path,
                f"pixels of level {level} cannot be read ({type(error).__name__}: {error}); "
                "the file is damaged, get a fresh copy of the slide",
            ) from error

    if factor == 1:
        return rows_of(0, height, width), level_ds
    out = np.empty((out_h, out_w, 3), dtype=np.uint8)
    rows = max(1, (2048 // factor)) * factor  # about 2048 level rows per strip
    for y in range(0, out_h * factor, rows):
        strip = rows_of(y, min(y + rows, out_h * factor), out_w * factor)
        n = strip.shape[0] // factor
        blocks = strip[: n * factor].reshape(n, factor, out_w, factor, 3)
        out[y // factor : y // factor + n] = blocks.mean(axis=(1, 3)).round().astype(np.uint8)
    return out, level_ds * factor


def tissue_mask_from_rgb(image: np.ndarray, params: TissueParams, mpp: float) -> np.ndarray:
    """Boolean tissue mask of an RGB uint8 image at ``mpp`` µm/px (see :class:`TissueParams`)."""
    rgb = image[..., :3]
    # float32 per-pixel maps only (no float64 HSV image): a 100k-px slide's mask level
    # is ~3,000 px square, and memory is what bounds the job
    high = rgb.max(axis=-1).astype(np.float32)
    saturation = (high - rgb.min(axis=-1)) / np.maximum(high, 1.0)  # HSV saturation
    od_of_value = -np.log(np.clip(np.arange(256, dtype=np.float32) / 255.0, 1.0 / 255.0, 1.0))
    optical_density = (
        od_of_value[rgb[..., 0]] + od_of_value[rgb[..., 1]] + od_of_value[rgb[..., 2]]
    )
    brightness = rgb.mean(axis=-1, dtype=np.float32) / 255.0
    not_white = brightness < 0.98
    threshold = params.min_saturation
    if not_white.sum() > 64:
        otsu = float(filters.threshold_otsu(saturation[not_white]))
        # Otsu splits tissue from glass when both are present; on a field of tissue it
        # would split the tissue itself, so it may only raise the threshold a little.
        threshold = max(threshold, min(otsu, 0.15))
    tissue = (saturation > threshold) | (
        (optical_density > params.min_optical_density) & (brightness < params.max_brightness)
    )
    tissue &= ~((brightness > params.max_brightness) & (saturation < threshold))
    excluded = np.all(rgb < params.dark_limit, axis=-1)
    if params.exclude_pen:
        excluded |= pen_marks(rgb)
    if excluded.any():
        margin = max(2, round(params.pen_margin_um / mpp))
        excluded = ndi.binary_dilation(excluded, morphology.disk(margin))
    tissue &= ~excluded
    radius = max(1, round(params.closing_um / mpp))
    tissue = morphology.closing(tissue, morphology.disk(radius)).astype(bool)
    tissue &= ~excluded
    px_area = mpp * mpp
    tissue = morphology.remove_small_holes(
        tissue, max_size=max(1, int(params.min_hole_area_um2 / px_area))
    )
    tissue = morphology.remove_small_objects(
        tissue, max_size=max(1, int(params.min_tissue_area_um2 / px_area))
    )
    return tissue.astype(bool)


def pen_marks(rgb: np.ndarray) -> np.ndarray:
    """Pixels of blue, green, black or saturated-red marker ink (never H&E stain colours).

    H&E is pink to purple: red stays at least as high as green, and blue never dominates
    red by much. Inks break those rules (or are near black).
    """
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    blue = (b > r + 40) & (b > g + 20)
    green = (g > r + 15) & (g >= b - 10)
    black = (np.maximum(np.maximum(r, g), b) < 90) & (np.abs(r - b) < 30) & (np.abs(r - g) < 30)
    red = (r > 150) & (g < 60) & (b < 70)
    return blue | green | black | red


def mask_to_polygons(
    mask: np.ndarray, downsample: float, tolerance_px: float = 1.0
) -> list[list[np.ndarray]]:
    """Outlines of every connected piece of ``mask`` in level-0 px: ``[exterior, *holes]``.

    Rings are closed ``(n, 2)`` float arrays of (x, y), simplified to ``tolerance_px`` mask
    pixels (Douglas-Peucker). Pieces are 8-connected; a hole is 4-connected background
    enclosed by its piece.
    """
    labels, _n = ndi.label(mask)
    polygons: list[list[np.ndarray]] = []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        piece = labels[box] == index
        filled = ndi.binary_fill_holes(piece)
        offset = np.array([box[1].start, box[0].start], dtype=float)
        exterior = _outer_ring(filled, offset, downsample, tolerance_px)
        if exterior is None:
            continue
        rings = [exterior]
        holes, n_holes = ndi.label(filled & ~piece)
        for hole_index in range(1, n_holes + 1):
            ring = _outer_ring(holes == hole_index, offset, downsample, tolerance_px)
            if ring is not None:
                rings.append(ring)
        polygons.append(rings)
    return polygons


def _outer_ring(
    region: np.ndarray, offset: np.ndarray, downsample: float, tolerance_px: float
) -> np.ndarray | None:
    padded = np.pad(region, 1).astype(np.float32)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return None
    contour = max(contours, key=len)  # the outline of a filled region is its longest contour
    contour = measure.approximate_polygon(contour, tolerance_px)
    if len(contour) < 4:
        return None
    # find_contours gives (row, col) at pixel centres of the padded image; a pixel's centre
    # sits at +0.5 of its level-0 extent.
    xy = (contour[:, ::-1] - 1.0 + 0.5 + offset) * downsample
    if not np.allclose(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    return xy


def rasterize_geojson(
    geojson: dict[str, Any], shape: tuple[int, int], downsample: float
) -> np.ndarray:
    """Burn the polygons of a GeoJSON object (level-0 px) into a mask of ``shape``."""
    from slidescope.app.analysis.roi import rasterize_polygons
    from slidescope.app.annotations.geojson import iter_polygons

    # a scanline fill: linear in the vertices, not vertices x pixels
    return rasterize_polygons(list(iter_polygons(geojson)), shape, downsample)


def tissue_share_per_patch(
    tissue: TissueMask, coords: np.ndarray, size_level0: float
) -> np.ndarray:
    """Share of each level-0 square ``(x, y, size)`` covered by tissue, from an integral image."""
    mask = tissue.mask
    if len(coords) == 0:
        return np.zeros(0, dtype=np.float32)
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    integral[1:, 1:] = mask.cumsum(0, dtype=np.int32).cumsum(1, dtype=np.int32)
    ds = tissue.downsample
    left = np.round(coords[:, 0] / ds).astype(np.int64)
    top = np.round(coords[:, 1] / ds).astype(np.int64)
    right = np.maximum(np.round((coords[:, 0] + size_level0) / ds).astype(np.int64), left + 1)
    bottom = np.maximum(np.round((coords[:, 1] + size_level0) / ds).astype(np.int64), top + 1)
    x0, x1 = np.clip(left, 0, mask.shape[1]), np.clip(right, 0, mask.shape[1])
    y0, y1 = np.clip(top, 0, mask.shape[0]), np.clip(bottom, 0, mask.shape[0])
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    # the area is the whole patch, so a patch hanging over the slide's edge counts the
    # outside as glass
    area = (right - left) * (bottom - top)
    return (inside / area).astype(np.float32)


def write_tissue_files(
    tissue: TissueMask, out_dir: str | Path, slide_id: str
) -> tuple[Path, Path]:
    """Write ``<slide_id>.tissue.png`` (white = tissue) and ``<slide_id>.tissue.geojson``.

    Both writes are atomic. The PNG is the mask at its own resolution (``downsample``
    level-0 px per pixel); the GeoJSON is in level-0 px.
    """
    from PIL import Image
    from slidescope.app.annotations.geojson import write_geojson

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{slide_id}.tissue.png"
    with atomic_path(png) as temp:
        Image.fromarray((tissue.mask * 255).astype(np.uint8)).save(temp, format="PNG")
    geojson = write_geojson(out / f"{slide_id}.tissue.geojson", tissue.to_geojson())
    return png, geojson
