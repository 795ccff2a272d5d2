"""Small synthetic H&E-like slides for the tissue, patch and extraction tests.

Pink tissue blobs with purple nuclei on glass; optional pen stroke and debris; optional
"lesion" region of denser, larger, darker nuclei. Written as JPEG-tiled pyramidal TIFFs
with tifffile, or served from memory by :class:`ArraySlide`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from skimage import draw
from slidescope.app.slides.slide import Slide

GLASS = (243, 243, 246)
STROMA = (225, 150, 190)
NUCLEUS = (110, 60, 150)
DARK_NUCLEUS = (60, 25, 100)


def he_like_image(
    width: int,
    height: int,
    blobs: Sequence[tuple[int, int, int]] = (),
    lesion: tuple[int, int, int] | None = None,
    pen: tuple[int, int, int, int] | None = None,
    debris: Sequence[tuple[int, int, int]] = (),
    seed: int = 0,
    nucleus_radius: int = 4,
    density: float = 0.004,
) -> np.ndarray:
    """An RGB uint8 image: glass, tissue discs ``(cx, cy, r)``, nuclei, extras.

    ``lesion`` ``(cx, cy, r)`` is a disc of dense, large, dark nuclei; ``pen``
    ``(x0, y0, x1, y1)`` a thick blue stroke; ``debris`` black dots ``(cx, cy, r)``.
    """
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = GLASS
    tissue = np.zeros((height, width), dtype=bool)
    for cx, cy, r in blobs:
        rr, cc = draw.disk((cy, cx), r, shape=tissue.shape)
        tissue[rr, cc] = True
    noise = rng.integers(-12, 12, size=(height, width, 1))
    stroma = np.clip(np.array(STROMA) + noise, 0, 255).astype(np.uint8)
    image[tissue] = stroma[tissue]
    ys, xs = np.nonzero(tissue)
    n = int(len(ys) * density / (nucleus_radius**2))
    for i in rng.choice(len(ys), size=min(n, len(ys)), replace=False) if len(ys) else []:
        rr, cc = draw.disk((ys[i], xs[i]), nucleus_radius, shape=tissue.shape)
        image[rr, cc] = NUCLEUS
    if lesion is not None:
        cx, cy, r = lesion
        rr, cc = draw.disk((cy, cx), r, shape=tissue.shape)
        image[rr, cc] = np.clip(np.array(STROMA) - 30, 0, 255)
        for _ in range(int(np.pi * r * r * 0.02 / (nucleus_radius**2))):
            a, d = rng.uniform(0, 2 * np.pi), r * np.sqrt(rng.uniform())
            rr, cc = draw.ellipse(
                cy + d * np.sin(a),
                cx + d * np.cos(a),
                nucleus_radius * 2.0,
                nucleus_radius * 1.4,
                shape=tissue.shape,
                rotation=rng.uniform(0, np.pi),
            )
            image[rr, cc] = DARK_NUCLEUS
    if pen is not None:
        x0, y0, x1, y1 = pen
        for t in range(-6, 7):
            rr, cc = draw.line(y0 + t, x0, y1 + t, x1)
            ok = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
            image[rr[ok], cc[ok]] = (30, 60, 170)
    for cx, cy, r in debris:
        rr, cc = draw.disk((cy, cx), r, shape=tissue.shape)
        image[rr, cc] = (15, 15, 15)
    return image


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def write_pyramid_tiff(
    path: Path, image: np.ndarray, mpp: float | None = 0.25, levels: int = 4
) -> Path:
    """A JPEG-tiled pyramidal TIFF (levels as reduced-resolution pages, OpenSlide's layout)."""
    options: dict[str, Any] = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb"}
    resolution: dict[str, Any] = {}
    if mpp is not None:
        resolution = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, software="SlideScope tests", **resolution, **options)
        for level in range(1, levels):
            small = downsample(image, 2**level)
            if min(small.shape[:2]) < 16:
                break
            tif.write(small, subfiletype=1, **options)
    return path


class ArraySlide(Slide):
    """A slide served from in-memory arrays (level 0 first)."""

    def __init__(
        self, levels: Sequence[np.ndarray], mpp: float | None = 0.25, name: str = "array.tiff"
    ) -> None:
        super().__init__(Path(name), None)
        self._levels = list(levels)
        self._mpp = (mpp, mpp) if mpp else None

    @classmethod
    def pyramid(cls, image: np.ndarray, mpp: float | None = 0.25, levels: int = 4) -> ArraySlide:
        arrays = [image]
        for level in range(1, levels):
            arrays.append(downsample(image, 2**level))
        return cls(arrays, mpp)

    @property
    def format(self) -> str:
        return "array"

    @property
    def levels(self) -> Sequence[Any]:
        return self._levels

    @property
    def properties(self) -> Mapping[str, str]:
        return {}

    @property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        return {}

    def _file_mpp(self) -> tuple[float, float] | None:
        return self._mpp
