"""OME-Zarr (OME-NGFF 0.4 and 0.5) pyramids, read natively with zarr.

The ``multiscales`` metadata names the levels (``datasets``), their axes and their scales.
Any axis order that contains ``c``, ``y`` and ``x`` is served (``t`` and ``z`` are read at
index 0) as a lazy ``(y, x, 3)`` view. SlideScope's own converter writes ``multiscales``
last, so a store that has the ``slidescope`` attribute but no ``multiscales`` is an
unfinished conversion and is refused as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from slidescope.app.slides.chunk_files import chunk_file_reader
from slidescope.app.slides.errors import (
    CorruptSlideError,
    IncompleteConversionError,
    UnsupportedCompressionError,
    UnsupportedSlideError,
)
from slidescope.app.slides.level import SlideLevel
from slidescope.app.slides.plausibility import MAX_LEVELS, check_image_size, check_tile_size
from slidescope.app.slides.rgb_view import RGBView
from slidescope.app.slides.slide import Slide, SlideIdentity
from slidescope.app.slides.tile_cache import TileCache
from slidescope.app.slides.tile_reader import DEFAULT_CACHE_BYTES, ChunkReader

# Microns in one NGFF (UDUNITS-2) space unit.
# codec names (numcodecs / imagecodecs ids) that lose detail: a level compressed with one is lossy
LOSSY_CODEC_NAMES = ("jpeg", "webp", "avif", "jpegxr", "jpeg2k", "jpegxl")
_MICRONS_PER_UNIT = {
    "nanometer": 1e-3,
    "micrometer": 1.0,
    "micron": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
}


class OmeZarrSlide(Slide):
    """An OME-Zarr multiscale image."""

    def __init__(self, path: str | Path, mpp: tuple[float, float] | None = None) -> None:
        super().__init__(path, mpp)
        _register_image_codecs()
        try:
            self._group = zarr.open_group(self.path, mode="r")
            attrs = self._group.attrs.asdict()
        except Exception as error:  # zarr raises many kinds for broken metadata
            raise CorruptSlideError(
                self.path, f"the zarr metadata cannot be read ({error})"
            ) from error
        self._slidescope: dict[str, Any] = dict(attrs.get("slidescope") or {})
        ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else attrs
        multiscales = ome.get("multiscales")
        version = ome.get("version") or (multiscales[0].get("version") if multiscales else None)
        self._ngff_version = str(version or "0.4")
        # The converter writes ``slidescope.complete`` false while it works, true at the end.
        unfinished = self._slidescope.get("complete") is False
        if not multiscales or unfinished:
            if self._slidescope:
                raise IncompleteConversionError(
                    self.path,
                    "incomplete conversion: the pyramid has no multiscales metadata yet "
                    "(the conversion was stopped); run `slidescope convert` again to finish it",
                )
            raise UnsupportedSlideError(
                self.path, "a zarr store without OME-NGFF multiscales metadata is no slide"
            )
        self._multiscale: dict[str, Any] = multiscales[0]
        self._axes = _axis_names(self.path, self._multiscale)
        self._levels: list[RGBView] = []
        for index, dataset in enumerate(self._multiscale.get("datasets", [])):
            try:
                array = self._group[dataset["path"]]
            except (KeyError, TypeError) as error:
                raise CorruptSlideError(
                    self.path, f"level {index} ({dataset!r}) is missing from the store"
                ) from error
            except Exception as error:  # numcodecs' UnknownCodecError and kin
                if "codec" in str(error).lower():
                    raise UnsupportedCompressionError(
                        self.path,
                        f"level {index} is compressed with a codec nobody here can decode "
                        f"({error}); convert it again with --lossless",
                    ) from error
                raise CorruptSlideError(
                    self.path, f"level {index} cannot be read ({error})"
                ) from error
            try:
                view = RGBView(array, self._axes, source=self.path)
            except ValueError as error:
                raise UnsupportedSlideError(self.path, f"level {index}: {error}") from error
            _check_sizes(self.path, view, self._axes, index)
            self._levels.append(view)
        if not self._levels:
            raise CorruptSlideError(self.path, "the multiscales metadata lists no datasets")
        if len(self._levels) > MAX_LEVELS:
            raise CorruptSlideError(self.path, f"the pyramid claims {len(self._levels)} levels")
        cache = TileCache(DEFAULT_CACHE_BYTES)
        self._cache = cache
        for index, view in enumerate(self._levels):
            chunk = _yx_chunks(view.array, self._axes)
            # Chunks too big to cache (an unchunked level) are read window by window.
            small = chunk[0] * chunk[1] * 3 <= cache.max_bytes // 8
            # the layout `slidescope convert` writes is read from its chunk files directly
            files = chunk_file_reader(view.array, self._axes, self.path, index, cache)
            if files is not None and small:
                self._readers.append(files)
            else:
                self._readers.append(ChunkReader(view, chunk, index, cache) if small else None)
        self._level_arrays = [SlideLevel(v, self.path, i) for i, v in enumerate(self._levels)]

    @property
    def lossy(self) -> bool:
        metadata = json.dumps(self._levels[0].array.metadata.to_dict(), default=str).lower()
        return any(name in metadata for name in LOSSY_CODEC_NAMES)

    @property
    def format(self) -> str:
        return "ome-zarr"

    @property
    def levels(self) -> Sequence[Any]:
        return self._level_arrays

    @property
    def properties(self) -> Mapping[str, str]:
        props = {
            "openslide.vendor": "ome-zarr",
            "ome.version": self._ngff_version,
            "ome.axes": ",".join(self._axes),
            "openslide.level-count": str(len(self._levels)),
        }
        mpp = self._file_mpp()
        if mpp is not None:
            props["openslide.mpp-x"], props["openslide.mpp-y"] = repr(mpp[0]), repr(mpp[1])
        for i, ((w, h), ds) in enumerate(zip(self.level_dimensions, self.downsamples)):
            props[f"openslide.level[{i}].width"] = str(w)
            props[f"openslide.level[{i}].height"] = str(h)
            props[f"openslide.level[{i}].downsample"] = repr(ds)
        for key, value in self._slidescope.items():
            inner = value if isinstance(value, dict) else {"": value}
            for sub, item in inner.items():
                if isinstance(item, (str, int, float, bool)):
                    props[f"slidescope.{key}.{sub}".rstrip(".")] = str(item)
        return props

    @property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        return _AssociatedImages(self._group)

    def close(self) -> None:
        self._cache.clear()

    def _file_mpp(self) -> tuple[float, float] | None:
        scale = _level0_scale(self._multiscale)
        units = {
            a["name"]: a.get("unit")
            for a in self._multiscale.get("axes", [])
            if isinstance(a, dict) and "name" in a
        }
        if scale is not None:
            factors = [_MICRONS_PER_UNIT.get(str(units.get(a))) for a in ("x", "y")]
            if all(f is not None for f in factors):
                x = scale[self._axes.index("x")] * factors[0]  # type: ignore[operator]
                y = scale[self._axes.index("y")] * factors[1]  # type: ignore[operator]
                if x > 0 and y > 0:
                    return float(x), float(y)
        mpp = self._slidescope.get("mpp")
        if isinstance(mpp, (list, tuple)) and len(mpp) == 2 and all(mpp):
            return float(mpp[0]), float(mpp[1])
        return None

    @property
    def identity(self) -> SlideIdentity:
        """The source slide's identity when this pyramid is its faithful conversion.

        Results computed on the source (features, annotations) then place on the converted
        pyramid and back; any other store gets an identity of its own.
        """
        # SlideScope's converter stores the source's identity under "source".
        source = self._slidescope.get("source", self._slidescope.get("identity"))
        if isinstance(source, dict):
            try:
                identity = SlideIdentity.from_dict(source)
            except (KeyError, TypeError, ValueError):
                identity = None
            if identity is not None and (identity.width, identity.height) == self.dimensions:
                if self._mpp_override and self._mpp_override != identity.mpp:
                    identity = SlideIdentity(**{**identity.__dict__, "mpp": self.mpp})
                return identity
        return super().identity


class _AssociatedImages(Mapping[str, np.ndarray]):
    """Images under the store's ``associated/`` group (label, macro, thumbnail), if any."""

    def __init__(self, group: Any) -> None:
        try:
            self._group = group["associated"]
            self._names = sorted(self._group.array_keys())
        except (KeyError, AttributeError):
            self._group, self._names = None, []

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        array = self._group[name]
        axes = str(array.attrs.get("axes", "yxc" if array.shape[-1] in (3, 4) else "cyx"))
        return RGBView(array, axes)[:, :]

    def __iter__(self) -> Any:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _register_image_codecs() -> None:
    """Let zarr decode imagecodecs' numcodecs codecs (``slidescope convert --compression jpeg``)."""
    try:
        from imagecodecs.numcodecs import register_codecs
    except ImportError:  # pragma: no cover - imagecodecs is a dependency
        return
    register_codecs(verbose=False)


def _check_sizes(path: Path, view: RGBView, axes: str, index: int) -> None:
    """Refuse a level or chunk size no slide has, before anything is read."""
    check_image_size(path, view.shape[1], view.shape[0], f"level {index}")
    chunks = getattr(view.array, "chunks", None) or view.array.shape
    chunk = [int(chunks[axes.index(a)]) for a in axes if a in "yxc"]
    check_tile_size(path, chunk, 1, f"level {index}")


def _yx_chunks(array: Any, axes: str) -> tuple[int, int]:
    """The height and width of the array's chunks, as zarr reports them."""
    chunks = getattr(array, "chunks", None) or array.shape
    return int(chunks[axes.index("y")]), int(chunks[axes.index("x")])


def _axis_names(path: Path, multiscale: Mapping[str, Any]) -> str:
    axes = multiscale.get("axes")
    if not axes:  # NGFF <= 0.3 had no axes: always 5D tczyx
        return "tczyx"
    names = "".join(str(a["name"] if isinstance(a, dict) else a).lower()[:1] for a in axes)
    if "y" not in names or "x" not in names:
        raise UnsupportedSlideError(path, f"the pyramid's axes {names!r} have no y and x")
    return names


def _level0_scale(multiscale: Mapping[str, Any]) -> list[float] | None:
    datasets = multiscale.get("datasets") or []
    if not datasets:
        return None
    scale = None
    for transform in datasets[0].get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = [float(s) for s in transform["scale"]]
    for transform in multiscale.get("coordinateTransformations", []) or []:
        if transform.get("type") == "scale" and scale is not None:
            scale = [a * float(b) for a, b in zip(scale, transform["scale"])]
    return scale
