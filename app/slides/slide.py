"""The ``Slide``: a whole-slide image as a multiscale pyramid of lazily read arrays.

Coordinates are level-0 pixels, ``(x, y)`` from the top-left corner (DESIGN.md,
"Coordinates"). Arrays are ``(y, x, 3)`` uint8, level 0 first.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.errors import MissingMppError
from slidescope.app.slides.errors import SlideError, SlideTooLargeError
from slidescope.app.slides.file_errors import reading
from slidescope.app.slides.zarr_folder import root_metadata

# The most a thumbnail reads of one level at a time.
_THUMBNAIL_STRIP_BYTES = 64 * 1024 * 1024
# The largest region one read_region call returns (a 32,768 x 32,768 RGB image).
MAX_REGION_BYTES = 3 * 2**30


@dataclass(frozen=True)
class SlideIdentity:
    """What every stored result carries so that it is placed on the right slide.

    Attributes
    ----------
    slide_id : str
        The file's stem (``slide.svs`` -> ``slide``); the key of feature files and labels.
    fingerprint : str
        A short hash of the file's size, level-0 size and first bytes: a different file
        under the same name is detected.
    width, height : int
        Level-0 size in pixels.
    mpp : tuple of float or None
        Microns per pixel in x and y, when known.
    """

    slide_id: str
    fingerprint: str
    width: int
    height: int
    mpp: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slide_id": self.slide_id,
            "fingerprint": self.fingerprint,
            "width": self.width,
            "height": self.height,
            "mpp": list(self.mpp) if self.mpp else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlideIdentity:
        mpp = data.get("mpp")
        return cls(
            slide_id=str(data["slide_id"]),
            fingerprint=str(data["fingerprint"]),
            width=int(data["width"]),
            height=int(data["height"]),
            mpp=(float(mpp[0]), float(mpp[1])) if mpp else None,
        )


class Slide(ABC):
    """A whole-slide image, opened by :func:`slidescope.app.slides.open_slide`.

    Subclasses (one per backend, one file each) provide the levels and metadata; the
    region reading, thumbnails and identity are shared here.
    """

    def __init__(self, path: str | Path, mpp: tuple[float, float] | None = None) -> None:
        self.path = Path(path)
        self._mpp_override = mpp
        # What is wrong with the file but did not stop it from opening, in words: levels
        # dropped because their tiles lie past the end of the file, damaged tiles, and what
        # tifffile logged about it. Empty for a healthy slide; ``slidescope info`` shows it.
        self.problems: list[str] = []
        # Per level, a reader with a faster road than slicing ``levels`` (tiles decoded
        # directly, a cache of decoded chunks), or None; backends fill it.
        self._readers: list[Any] = []

    # -- what a backend provides ---------------------------------------------------------

    @property
    @abstractmethod
    def format(self) -> str:
        """The vendor or format, e.g. ``"aperio"``, ``"generic-tiff"``, ``"ome-zarr"``."""

    @property
    @abstractmethod
    def levels(self) -> Sequence[Any]:
        """Lazily read arrays, level 0 first, each ``(y, x, 3)`` uint8, sliceable."""

    @property
    @abstractmethod
    def properties(self) -> Mapping[str, str]:
        """The file's metadata as strings (OpenSlide's property names where they apply)."""

    @property
    @abstractmethod
    def associated_images(self) -> Mapping[str, np.ndarray]:
        """Label, macro, thumbnail, ... images the file carries (read on access)."""

    @abstractmethod
    def _file_mpp(self) -> tuple[float, float] | None:
        """Microns per pixel as the file states them, or None."""

    def close(self) -> None:  # noqa: B027 - backends without handles need nothing
        """Release file handles."""

    # -- shared ----------------------------------------------------------------------------

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            w, h = self.dimensions
            size = f"{w}x{h} levels={len(self.levels)}"
        except Exception:  # a half-opened slide (its error being reported) has no levels
            size = "(not open)"
        return f"<{type(self).__name__} {self.path.name!r} {size}>"

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Microns per pixel (x, y) at level 0: the override given at open, else the file's."""
        return self._mpp_override or self._file_mpp()

    def require_mpp(self) -> tuple[float, float]:
        """The mpp, or a :class:`MissingMppError` that says how to give it."""
        mpp = self.mpp
        if mpp is None:
            raise MissingMppError(
                f"{self.path}: the file does not say its microns per pixel; "
                "pass the slide's resolution with --slide-mpp (e.g. --slide-mpp 0.25)"
            )
        return mpp

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        shape = self.levels[0].shape
        return int(shape[1]), int(shape[0])

    @property
    def level_dimensions(self) -> list[tuple[int, int]]:
        return [(int(a.shape[1]), int(a.shape[0])) for a in self.levels]

    @property
    def downsamples(self) -> list[float]:
        """Level-0 width over each level's width (OpenSlide's convention)."""
        w0, h0 = self.dimensions
        return [float(np.mean([w0 / w, h0 / h])) for w, h in self.level_dimensions]

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (+1% slack)."""
        best = 0
        for i, d in enumerate(self.downsamples):
            if d <= downsample * 1.01:
                best = i
        return best

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read ``size`` (w, h) pixels of ``level`` whose top-left is ``location`` in level-0 px.

        Like OpenSlide's ``read_region``, but returns ``(h, w, 3)`` uint8 RGB and fills the
        part outside the slide with white. Raises a ``SlideError`` for a damaged file.
        """
        x0, y0 = (int(v) for v in location)
        w, h = (int(v) for v in size)
        self._check_region(level, w, h)
        ds = self.downsamples[level]
        shape = self.levels[level].shape
        lh, lw = int(shape[0]), int(shape[1])
        lx, ly = math.floor(x0 / ds), math.floor(y0 / ds)
        ax0, ay0 = max(lx, 0), max(ly, 0)
        ax1, ay1 = min(lx + w, lw), min(ly + h, lh)
        with reading(self.path, f"a region of level {level}"):
            if (ax0, ay0, ax1 - ax0, ay1 - ay0) == (lx, ly, w, h):
                return self._read_level(level, ay0, ay1, ax0, ax1)  # all inside: no padding
            out = np.full((h, w, 3), 255, dtype=np.uint8)
            if ax1 > ax0 and ay1 > ay0:
                out[ay0 - ly : ay1 - ly, ax0 - lx : ax1 - lx] = self._read_level(
                    level, ay0, ay1, ax0, ax1
                )
            return out

    def _check_region(self, level: int, w: int, h: int) -> None:
        count = len(self.levels)
        if not 0 <= level < count:
            raise SlideError(self.path, f"has no level {level}; its levels are 0 to {count - 1}")
        if w < 0 or h < 0:
            raise SlideError(self.path, f"a region cannot have a negative size ({w} x {h})")
        if w * h * 3 > MAX_REGION_BYTES:
            raise SlideTooLargeError(
                self.path,
                f"a region of {w:,} x {h:,} px is more than one read may return "
                f"({MAX_REGION_BYTES / 2**30:.0f} GiB); read it in parts",
            )

    def _read_level(self, level: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` (inside the level) as ``(h, w, 3)`` uint8.

        Through the backend's fast reader for the level when it has one (``_readers``),
        else by slicing the level.
        """
        reader = self._readers[level] if level < len(self._readers) else None
        if reader is not None:
            return reader.read(y0, y1, x0, x1)
        return np.asarray(self.levels[level][y0:y1, x0:x1])[..., :3]

    def _stored_tiles(self, level: int) -> Any:
        """The reader of ``level`` when it hands out its JPEG tiles as the file stores them.

        That reader has ``jpeg_tiles()`` (how they decode) and ``stored_tile(row, col)``
        (their bytes); None when the level has no such tiles. What a converter copies
        without decoding and re-encoding.
        """
        reader = self._readers[level] if level < len(self._readers) else None
        jpeg_tiles = getattr(reader, "jpeg_tiles", None)
        return reader if jpeg_tiles is not None and jpeg_tiles() is not None else None

    @property
    def lossy(self) -> bool:
        """Whether the file stores its pixels with a lossy codec (JPEG, JPEG 2000, WebP, ...).

        A lossless copy of such pixels is 5-8 times the file's size; the converter keeps
        them lossy unless asked otherwise. Backends that know say so; the default is False.
        """
        return False

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """An RGB image of the whole slide whose longer side is at most ``max_size``.

        Read from the coarsest level that is fine enough, in strips that are shrunk as they
        come, so that a slide without a pyramid never has to fit in memory at once (at most
        64 MiB of one level is held at a time). Raises a ``SlideError`` for a damaged file.
        """
        if max_size < 1:
            raise SlideError(
                self.path, f"a thumbnail needs a size of at least 1 px, not {max_size}"
            )
        with reading(self.path, "the thumbnail"):
            return self._thumbnail(max_size)

    def _thumbnail(self, max_size: int) -> np.ndarray:
        from PIL import Image

        w0, h0 = self.dimensions
        scale = max(w0, h0) / max_size
        level = self.best_level_for_downsample(max(scale, 1.0))
        array = self.levels[level]
        lh, lw = int(array.shape[0]), int(array.shape[1])
        tw, th = max(1, round(w0 / max(scale, 1.0))), max(1, round(h0 / max(scale, 1.0)))
        factor = max(1, min(lw // tw, lh // th))  # whole-pixel shrink while reading
        if factor == 1:
            image = np.asarray(array[:, :])[..., :3]
        else:
            rows = max(factor, (_THUMBNAIL_STRIP_BYTES // (lw * 3)) // factor * factor)
            usable_h, usable_w = lh // factor * factor, lw // factor * factor
            strips = []
            for y in range(0, usable_h, rows):
                strip = np.asarray(array[y : min(y + rows, usable_h), :usable_w])[..., :3]
                n = strip.shape[0] // factor
                blocks = strip.reshape(n, factor, usable_w // factor, factor, 3)
                strips.append(blocks.mean(axis=(1, 3)).round().astype(np.uint8))
            image = np.concatenate(strips, axis=0)
        if (image.shape[1], image.shape[0]) != (tw, th):
            image = np.asarray(Image.fromarray(image).resize((tw, th), Image.Resampling.BOX))
        return image

    @cached_property
    def identity(self) -> SlideIdentity:
        w, h = self.dimensions
        return SlideIdentity(
            slide_id=slide_id_of(self.path),
            fingerprint=_fingerprint(self.path, (w, h)),
            width=w,
            height=h,
            mpp=self.mpp,
        )


def slide_id_of(path: str | Path) -> str:
    """The slide id of a path: its name without the slide suffix (``a.ome.zarr`` -> ``a``)."""
    name = Path(path).name.rstrip("/")
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _fingerprint(path: Path, dims: tuple[int, int]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{dims[0]}x{dims[1]}".encode())
    target = path
    if path.is_dir():  # zarr / OME-Zarr: the root metadata says what the pyramid is
        target = root_metadata(path) or path
    if target.is_file():
        digest.update(str(target.stat().st_size).encode())
        with target.open("rb") as f:
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]
