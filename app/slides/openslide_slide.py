"""Every other format OpenSlide reads (MIRAX, DICOM, VMS, SCN, BIF, Philips TIFF, ...).

Uses openslide-python with the ``openslide-bin`` wheel, so no system library is needed. Each
level is an :class:`OpenSlideLevel`: an array-like that reads what is sliced with
``read_region`` at that level and composites OpenSlide's RGBA over white (transparent means
"no tissue scanned here", which is white glass, not black).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openslide
from slidescope.app.slides.errors import CorruptSlideError, UnsupportedSlideError
from slidescope.app.slides.level import SlideLevel
from slidescope.app.slides.plausibility import MAX_LEVELS, MAX_SIDE, check_image_size
from slidescope.app.slides.rgb_view import normalise_key, squeeze_key
from slidescope.app.slides.slide import Slide


def rgba_over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite a non-premultiplied RGBA image over white, as ``(h, w, 3)`` uint8."""
    rgb = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:4].astype(np.uint16)
    if bool((alpha == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    # Rounded integer blend: rgb * a + 255 * (255 - a), over 255.
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


class OpenSlideLevel:
    """One level of an OpenSlide slide as a lazily read ``(y, x, 3)`` uint8 array."""

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, slide: OpenSlideSlide, level: int) -> None:
        self._slide = slide
        self.level = level
        w, h = slide.handle.level_dimensions[level]
        self.shape = (int(h), int(w), 3)
        self.downsample = float(slide.handle.level_downsamples[level])

    def __repr__(self) -> str:
        return f"<OpenSlideLevel {self.level} {self.shape}>"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        ys, xs, cs = normalise_key(key)
        y0, y1, ystep = ys.indices(self.shape[0])
        x0, x1, xstep = xs.indices(self.shape[1])
        if ystep != 1 or xstep != 1:
            rows, cols = range(y0, y1, ystep), range(x0, x1, xstep)
            if not rows or not cols:
                return np.empty((len(rows), len(cols), 3), np.uint8)[:, :, cs][squeeze_key(key)]
            top, left = min(rows), min(cols)
            block = self.read(top, max(rows) + 1, left, max(cols) + 1)
            block = block[np.asarray(rows) - top][:, np.asarray(cols) - left]
        else:
            block = self.read(y0, y1, x0, x1)
        return block[:, :, cs][squeeze_key(key)]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of this level (level coordinates)."""
        h, w = max(y1 - y0, 0), max(x1 - x0, 0)
        if h == 0 or w == 0:
            return np.empty((h, w, 3), dtype=np.uint8)
        location = (round(x0 * self.downsample), round(y0 * self.downsample))
        return self._slide.read_openslide(location, self.level, (w, h))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


# OpenSlide vendors whose files hold JPEG or JPEG 2000 tiles
LOSSY_VENDORS = frozenset(
    {"aperio", "dicom", "hamamatsu", "leica", "mirax", "philips", "sakura", "trestle", "ventana"}
)


class OpenSlideSlide(Slide):
    """A slide read through OpenSlide."""

    def __init__(self, path: str | Path, mpp: tuple[float, float] | None = None) -> None:
        super().__init__(path, mpp)
        try:
            self.handle = openslide.OpenSlide(self.path)
        except openslide.OpenSlideUnsupportedFormatError as error:
            raise UnsupportedSlideError(
                self.path, "not a slide format OpenSlide or tifffile can read"
            ) from error
        except openslide.OpenSlideError as error:
            raise CorruptSlideError(self.path, f"OpenSlide cannot read it ({error})") from error
        try:
            self._check_sizes()
        except BaseException:
            self.handle.close()
            raise
        self._levels = [
            SlideLevel(OpenSlideLevel(self, i), self.path, i)
            for i in range(self.handle.level_count)
        ]

    def _check_sizes(self) -> None:
        """Refuse sizes no slide has before OpenSlide is asked to allocate for them."""
        count = self.handle.level_count
        if not 1 <= count <= MAX_LEVELS:
            raise CorruptSlideError(self.path, f"OpenSlide finds {count} pyramid levels in it")
        for level, (w, h) in enumerate(self.handle.level_dimensions):
            check_image_size(self.path, int(w), int(h), f"level {level}")
        for level, downsample in enumerate(self.handle.level_downsamples):
            if not 1.0 <= float(downsample) <= MAX_SIDE:
                raise CorruptSlideError(
                    self.path, f"level {level} has an impossible downsample of {downsample}"
                )

    @property
    def format(self) -> str:
        return str(self.handle.properties.get(openslide.PROPERTY_NAME_VENDOR, "openslide"))

    @property
    def levels(self) -> Sequence[Any]:
        return self._levels

    @property
    def lossy(self) -> bool:
        # these vendors' scanners store JPEG or JPEG 2000 tiles
        return self.format in LOSSY_VENDORS

    @property
    def properties(self) -> Mapping[str, str]:
        return dict(self.handle.properties)

    @property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        return _AssociatedImages(self)

    def _file_mpp(self) -> tuple[float, float] | None:
        props = self.handle.properties
        try:
            x = float(props[openslide.PROPERTY_NAME_MPP_X])
            y = float(props[openslide.PROPERTY_NAME_MPP_Y])
        except (KeyError, ValueError):
            return None
        return (x, y) if x > 0 and y > 0 else None

    @property
    def downsamples(self) -> list[float]:
        return [float(d) for d in self.handle.level_downsamples]

    def read_openslide(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """OpenSlide's ``read_region`` as ``(h, w, 3)`` uint8 over white."""
        try:
            image = self.handle.read_region(location, level, size)
        except openslide.OpenSlideError as error:
            raise CorruptSlideError(
                self.path, f"OpenSlide cannot read level {level} at {location} ({error})"
            ) from error
        return rgba_over_white(np.asarray(image))

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        self._check_region(level, int(size[0]), int(size[1]))
        # OpenSlide pads outside the slide with transparent pixels: white once composited.
        return self.read_openslide((int(location[0]), int(location[1])), level, size)

    def close(self) -> None:
        self.handle.close()


class _AssociatedImages(Mapping[str, np.ndarray]):
    """OpenSlide's associated images as RGB over white, read on access."""

    def __init__(self, slide: OpenSlideSlide) -> None:
        self._slide = slide
        self._names = list(slide.handle.associated_images.keys())

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        try:
            image = self._slide.handle.associated_images[name]
        except openslide.OpenSlideError as error:
            raise CorruptSlideError(
                self._slide.path, f"the {name} image cannot be read ({error})"
            ) from error
        return rgba_over_white(np.asarray(image.convert("RGBA")))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
