"""TIFF-family slides (Aperio SVS, generic tiled TIFF, OME-TIFF, NDPI) served from their own tiles.

Each level is a zarr view of the file's compressed tiles (tifffile's ``aszarr`` store), so
nothing is copied or converted. ``read_region`` takes a faster road for plain tiled pages
(:mod:`slidescope.app.slides.tile_reader`). Files tifffile cannot serve as tiles (strips
only, Philips, Ventana, Leica layouts) raise :class:`NotServableByTiff`, and
:func:`~slidescope.app.slides.open.open_slide` hands them to OpenSlide.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr
from slidescope.app.slides.errors import (
    CorruptSlideError,
    UnsupportedCompressionError,
)
from slidescope.app.slides.file_errors import file_log, reading
from slidescope.app.slides.level import SlideLevel
from slidescope.app.slides.plausibility import MAX_LEVELS, check_tiff_file, check_tiff_page
from slidescope.app.slides.rgb_view import RGBView
from slidescope.app.slides.slide import Slide
from slidescope.app.slides.tiff_metadata import tiff_mpp, tiff_properties
from slidescope.app.slides.tile_cache import TileCache
from slidescope.app.slides.tile_reader import (
    DEFAULT_CACHE_BYTES,
    SlideFile,
    TileReader,
    damaged_tiles,
)

ASSOCIATED_NAMES = ("label", "macro", "thumbnail", "overview")
# Grey (min-is-black), RGB and YCbCr (decoded to RGB); palette, CMYK, ... go to OpenSlide.
SERVED_PHOTOMETRICS = (1, 2, 6)
# TIFF compression tags of lossy codecs: old and new JPEG, Aperio's JPEG 2000 (33003,
# 33005), JPEG 2000 (34712), lossy JPEG (34892), JPEG XR (22610), WebP (34927, 50001),
# JPEG XL (50002)
LOSSY_COMPRESSIONS = frozenset({6, 7, 22610, 33003, 33005, 34712, 34892, 34927, 50001, 50002})
# Errors tifffile raises on a file that is not a TIFF or is cut short.
_TIFF_READ_ERRORS = (tifffile.TiffFileError, struct.error, ValueError, OSError, EOFError, KeyError)


class NotServableByTiff(Exception):
    """tifffile opened the file but should not serve it; OpenSlide should try first.

    ``strips_only`` says that tifffile could still serve it (strip by strip) if OpenSlide
    cannot: a plain, untiled TIFF.
    """

    def __init__(self, reason: str, strips_only: bool = False) -> None:
        super().__init__(reason)
        self.strips_only = strips_only


class TiffSlide(Slide):
    """A TIFF-family slide read through tifffile, its levels zarr views of its own tiles.

    Parameters
    ----------
    path : str or Path
        The TIFF file.
    mpp : (float, float), optional
        Microns per pixel overriding the file's.
    allow_strips : bool
        Serve a TIFF stored in strips (used only when OpenSlide refused it).
    cache_bytes : int
        Size of the decoded-tile cache behind ``read_region`` (0 turns it off).
    """

    def __init__(
        self,
        path: str | Path,
        mpp: tuple[float, float] | None = None,
        allow_strips: bool = False,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        super().__init__(path, mpp)
        self._allow_strips = allow_strips
        self._cache_bytes = cache_bytes
        self._file: SlideFile | None = None
        self._tif: tifffile.TiffFile | None = None
        try:
            # tifffile logs what it finds wrong; it goes into self.problems, not the terminal
            with file_log(self.problems):
                self._open()
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._tif = tifffile.TiffFile(self.path)
        except _TIFF_READ_ERRORS as error:
            raise CorruptSlideError(
                self.path, f"the TIFF structure cannot be read ({error}); is the file truncated?"
            ) from error
        with reading(self.path, "the TIFF structure"):
            # before anything is allocated, and before OpenSlide may be handed the file
            check_tiff_file(self.path, self._tif)
            self._open_levels()

    def _open_levels(self) -> None:
        tif = self._tif
        assert tif is not None
        if not tif.series:
            raise CorruptSlideError(self.path, _why_no_image(self.path))
        if tif.is_philips or tif.is_scn or _is_ventana(tif):
            raise NotServableByTiff("a vendor layout OpenSlide reads better")
        series = tif.series[0]
        levels = _pyramid_levels(tif, series)
        if len(levels) > MAX_LEVELS:
            raise CorruptSlideError(self.path, f"the TIFF claims {len(levels)} pyramid levels")
        for index, page in enumerate(_first_page(level) for level in levels):
            check_tiff_page(self.path, page, f"level {index}")
            _check_compression(self.path, page)
            if not (page.is_tiled or page.is_ndpi or self._allow_strips):
                raise NotServableByTiff("the image is stored in strips, not tiles", True)
            if np.dtype(page.dtype) != np.uint8:
                raise NotServableByTiff(f"{page.dtype} pixels are not 8-bit RGB")
            if int(page.photometric) not in SERVED_PHOTOMETRICS:
                raise NotServableByTiff(f"photometric {page.photometric!r} is not RGB or grey")
        tif.filehandle.set_lock(True)  # zarr may read from several threads
        self._file = SlideFile(self.path)
        self._cache = TileCache(self._cache_bytes)
        self._series = series
        self._pyramid: list[Any] = []
        self._levels: list[SlideLevel] = []
        for index, level in enumerate(levels):
            page = _first_page(level)
            damaged = damaged_tiles(page, self._file.size)
            if damaged and index > 0:
                # A level the file cannot hold whole (a truncated download) is left out and
                # said so; level 0 stays, and only its damaged tiles refuse to be read.
                self.problems.append(
                    f"level {index} ({int(page.imagewidth)} x {int(page.imagelength)} px) was "
                    f"left out: {len(damaged)} of its {len(page.dataoffsets)} tiles "
                    f"{_damage_summary(damaged)}"
                )
                continue
            level_in_series = index < len(series.levels)
            # A series with a pyramid gives a multiscale group; ask for one level.
            store = series.aszarr(level=index) if level_in_series else level.aszarr()
            array = zarr.open_array(store, mode="r")
            axes = _rgb_axes(level.axes)
            view: Any = array
            if not (axes == "yxc" and array.shape[-1] == 3):
                try:
                    view = RGBView(array, axes)
                except ValueError as error:
                    raise NotServableByTiff(str(error)) from error
            single_page = len(getattr(level, "pages", [page])) == 1
            reader = None
            number = len(self._levels)
            if single_page and TileReader.can_read(page):
                reader = TileReader(self._file, page, number, self._cache)
            elif damaged:
                # No tile-level guard for these layouts: refuse the whole slide up front.
                raise CorruptSlideError(
                    self.path,
                    f"level {index} has empty or truncated tiles or strips; the file is damaged",
                )
            if damaged:
                self.problems.append(
                    f"level 0: {len(damaged)} of its {len(page.dataoffsets)} tiles "
                    f"{_damage_summary(damaged)}; reading them raises an error"
                )
            self._levels.append(SlideLevel(view, self.path, number, reader))
            self._pyramid.append(level)
            self._readers.append(reader)

    # -- the Slide interface -----------------------------------------------------------------

    @property
    def format(self) -> str:
        tif = self.tiff
        if tif.is_svs:
            return "aperio"
        if tif.is_ndpi:
            return "hamamatsu"
        if tif.is_ome:
            return "ome-tiff"
        return "generic-tiff"

    @property
    def levels(self) -> Sequence[Any]:
        return self._levels

    @property
    def downsamples(self) -> list[float]:
        # Asked on every read_region: computed once.
        if not hasattr(self, "_downsamples"):
            self._downsamples = super().downsamples
        return list(self._downsamples)

    @property
    def properties(self) -> Mapping[str, str]:
        if not hasattr(self, "_properties"):
            self._properties = tiff_properties(self)
        return self._properties

    @property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        return _AssociatedImages(self)

    def _file_mpp(self) -> tuple[float, float] | None:
        return tiff_mpp(self.tiff)

    @property
    def lossy(self) -> bool:
        page = _first_page(self._pyramid_level(0))
        return int(page.compression) in LOSSY_COMPRESSIONS

    def tile_size(self, level: int) -> tuple[int, int] | None:
        """(width, height) of the stored tiles of ``level``, when it is tiled."""
        page = _first_page(self._pyramid_level(level))
        return (int(page.tilewidth), int(page.tilelength)) if page.is_tiled else None

    def _pyramid_level(self, level: int) -> Any:
        return self._pyramid[level]

    def close(self) -> None:
        file, tif = getattr(self, "_file", None), getattr(self, "_tif", None)
        if file is not None:
            file.close()
        if hasattr(self, "_cache"):
            self._cache.clear()
        if tif is not None:
            tif.close()

    # -- for tiff_metadata -------------------------------------------------------------------

    @property
    def tiff(self) -> tifffile.TiffFile:
        """The open :class:`tifffile.TiffFile` (metadata; do not read pixels through it)."""
        assert self._tif is not None, "the slide did not open"
        return self._tif

    def associated_series(self) -> dict[str, Any]:
        """Associated images by OpenSlide's name (``label``, ``macro``, ``thumbnail``)."""
        found: dict[str, Any] = {}
        for series in self.tiff.series[1:]:
            name = (series.name or "").strip().lower()
            if name in ASSOCIATED_NAMES and name not in found and series.dtype == np.uint8:
                found[name] = series
        return found


class _AssociatedImages(Mapping[str, np.ndarray]):
    """Associated images, each decoded only when it is looked up."""

    def __init__(self, slide: TiffSlide) -> None:
        self._slide = slide
        self._series = slide.associated_series()

    def __getitem__(self, name: str) -> np.ndarray:
        series = self._series[name]
        try:
            image = series.asarray()
        except Exception as error:  # a damaged label must not take the slide down with it
            raise CorruptSlideError(
                self._slide.path, f"the {name} image cannot be decoded ({error})"
            ) from error
        view = RGBView(image, _rgb_axes(series.axes))
        return view[:, :]

    def __iter__(self) -> Iterator[str]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)


def _why_no_image(path: Path) -> str:
    """Why a readable TIFF header leads to no image: most often a file cut short.

    A TIFF names where its first image directory starts; a copy or download that stopped
    early ends before it (writers put the directories after the pixels).
    """
    with path.open("rb") as handle:
        header = handle.read(16)
    size = path.stat().st_size
    order = "<" if header[:2] == b"II" else ">"
    big = len(header) == 16 and struct.unpack(order + "H", header[2:4])[0] == 43
    first = struct.unpack(order + ("Q" if big else "I"), header[8:16] if big else header[4:8])[0]
    if first >= size:
        return (
            f"the file is cut short: its first image directory starts at byte {first:,}, "
            f"past its end ({size:,} bytes); copy or download it again"
        )
    return "the TIFF holds no image"


def _damage_summary(damaged: dict[int, str]) -> str:
    reasons = sorted(set(damaged.values()))
    return reasons[0] if len(reasons) == 1 else "; ".join(reasons)


def _first_page(level: Any) -> Any:
    """The page that describes a level (a series level's key frame, or the page itself)."""
    return level.keyframe if hasattr(level, "keyframe") else level


def _pyramid_levels(tif: tifffile.TiffFile, series: Any) -> list[Any]:
    """Level 0 first: the series' own pyramid, else the tiled pages that shrink like one."""
    if len(series.levels) > 1:
        return list(series.levels)
    levels: list[Any] = [series]
    base = _first_page(series)
    height, width = int(base.imagelength), int(base.imagewidth)
    for other in tif.series[1:]:
        page = _first_page(other)
        name = (other.name or "").strip().lower()
        if name in ASSOCIATED_NAMES or len(other.pages) != 1 or not page.is_tiled:
            continue
        h, w = int(page.imagelength), int(page.imagewidth)
        last = _first_page(levels[-1])
        smaller = h < int(last.imagelength) and w < int(last.imagewidth)
        # Same shape as level 0, give or take a pixel of rounding per halving.
        similar = abs(w / width - h / height) < 2.0 / min(w, h) + 0.01
        if smaller and similar and page.samplesperpixel == base.samplesperpixel:
            levels.append(other)
    return levels


def _rgb_axes(axes: str) -> str:
    """tifffile's axis letters in RGBView's: samples/channels become ``c``."""
    return "".join("c" if a in "SC" else a.lower() for a in axes)


def _check_compression(path: Path, page: Any) -> None:
    compression = int(page.compression)
    if compression in (1, 7) or compression in tifffile.TIFF.DECOMPRESSORS:
        return
    raise UnsupportedCompressionError(
        path,
        f"tiles are compressed with TIFF compression {compression}, which no installed "
        "codec can decode; convert the slide with the scanner vendor's software",
    )


def _is_ventana(tif: tifffile.TiffFile) -> bool:
    xmp = tif.pages.first.tags.valueof(700)  # XMP; Ventana/Roche writes its iScan block here
    if isinstance(xmp, bytes):
        return b"iScan" in xmp
    return bool(isinstance(xmp, str) and "iScan" in xmp)
