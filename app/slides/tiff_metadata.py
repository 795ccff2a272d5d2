"""What a TIFF-family slide says about itself: microns per pixel and OpenSlide-named properties.

Resolution is looked for where each vendor writes it, most specific first: Aperio's
``MPP =`` in the ImageDescription, OME-XML's ``PhysicalSizeX/Y``, then the TIFF
``XResolution``/``YResolution`` tags with their ``ResolutionUnit`` (NDPI and generic TIFF).
Property names follow OpenSlide (``openslide.mpp-x``, ``aperio.AppMag``, ``tiff.Software``) so
a user who knows OpenSlide finds them where they expect.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import tifffile

if TYPE_CHECKING:
    from slidescope.app.slides.tiff_slide import TiffSlide

# Microns in one unit, for OME-XML's PhysicalSizeXUnit and TIFF's ResolutionUnit.
_MICRONS_PER_UNIT = {
    "pm": 1e-6,
    "Å": 1e-4,
    "nm": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "micrometer": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}
_RESOLUTION_UNIT_MICRONS = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}  # inch, cm, mm, µm
_RESOLUTION_UNIT_NAMES = {1: "none", 2: "inch", 3: "centimeter", 4: "millimeter", 5: "micrometer"}
# Larger than this is no microscope's level 0 (a 72-dpi default is 352 µm/px).
_MAX_PLAUSIBLE_MPP = 100.0
_TIFF_TEXT_TAGS = (
    "ImageDescription",
    "Make",
    "Model",
    "Software",
    "DateTime",
    "Artist",
    "HostComputer",
    "Copyright",
    "DocumentName",
)


def tiff_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    """Microns per pixel (x, y) of level 0 as the file states them, or None."""
    for finder in (_aperio_mpp, _ome_mpp, _resolution_mpp):
        mpp = finder(tif)
        if mpp is not None and all(_plausible(v) for v in mpp):
            return mpp
    return None


def tiff_properties(slide: TiffSlide) -> dict[str, str]:
    """The slide's metadata as strings under OpenSlide's property names."""
    tif = slide.tiff
    page = tif.pages.first
    props: dict[str, str] = {"openslide.vendor": slide.format}
    for name in _TIFF_TEXT_TAGS:
        value = page.tags.valueof(name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip("\x00 "):
            props[f"tiff.{name}"] = value.rstrip("\x00")
    unit = int(page.tags.valueof("ResolutionUnit", 2))
    props["tiff.ResolutionUnit"] = _RESOLUTION_UNIT_NAMES.get(unit, str(unit))
    for name in ("XResolution", "YResolution"):
        value = _rational(page.tags.valueof(name))
        if value is not None:
            props[f"tiff.{name}"] = _number(value)
    if "tiff.ImageDescription" in props and not tif.is_ome:
        props["openslide.comment"] = props["tiff.ImageDescription"]
    if tif.is_svs:
        fields = parse_aperio_description(page.description)
        props.update({f"aperio.{k}": v for k, v in fields.items()})
        if "AppMag" in fields:
            props["openslide.objective-power"] = fields["AppMag"]
    if tif.is_ndpi:
        magnification = (page.ndpi_tags or {}).get("Magnification")
        if magnification:
            props["openslide.objective-power"] = _number(float(magnification))
    mpp = tiff_mpp(tif)
    if mpp is not None:
        props["openslide.mpp-x"], props["openslide.mpp-y"] = _number(mpp[0]), _number(mpp[1])
    props["openslide.level-count"] = str(len(slide.levels))
    for i, ((w, h), ds) in enumerate(zip(slide.level_dimensions, slide.downsamples)):
        props[f"openslide.level[{i}].width"] = str(w)
        props[f"openslide.level[{i}].height"] = str(h)
        props[f"openslide.level[{i}].downsample"] = _number(ds)
        tile = slide.tile_size(i)
        if tile is not None:
            props[f"openslide.level[{i}].tile-width"] = str(tile[0])
            props[f"openslide.level[{i}].tile-height"] = str(tile[1])
    for name, series in slide.associated_series().items():
        axes = series.axes
        props[f"openslide.associated.{name}.width"] = str(series.shape[axes.index("X")])
        props[f"openslide.associated.{name}.height"] = str(series.shape[axes.index("Y")])
    return props


def parse_aperio_description(description: str) -> dict[str, str]:
    """``key = value`` pairs of an Aperio ImageDescription (after the first ``|``)."""
    fields: dict[str, str] = {}
    for part in description.split("|")[1:]:
        match = re.match(r"\s*([^=]+?)\s*=\s*(.*?)\s*$", part, flags=re.DOTALL)
        if match:
            fields[match.group(1)] = match.group(2)  # the last wins, as in OpenSlide
    return fields


def _aperio_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    if not tif.is_svs:
        return None
    value = _float(parse_aperio_description(tif.pages.first.description).get("MPP"))
    return (value, value) if value is not None else None


def _ome_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    if not tif.is_ome or not tif.ome_metadata:
        return None
    try:
        root = ET.fromstring(tif.ome_metadata)  # noqa: S314 - the slide's own metadata
    except ET.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for axis in ("X", "Y"):
        value = _float(pixels.get(f"PhysicalSize{axis}"))
        factor = _MICRONS_PER_UNIT.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if value is None or factor is None:
            return None
        sizes.append(value * factor)
    return sizes[0], sizes[1]


def _resolution_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    page = tif.pages.first
    unit = int(page.tags.valueof("ResolutionUnit", 2))
    microns = _RESOLUTION_UNIT_MICRONS.get(unit)
    x = _rational(page.tags.valueof("XResolution"))
    y = _rational(page.tags.valueof("YResolution"))
    if microns is None or not x or not y:
        return None
    return microns / x, microns / y


def _rational(value: Any) -> float | None:
    if isinstance(value, tuple) and len(value) == 2:
        return value[0] / value[1] if value[1] else None
    return _float(value)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plausible(mpp: float) -> bool:
    return 0 < mpp < _MAX_PLAUSIBLE_MPP


def _number(value: float) -> str:
    """A float as OpenSlide prints it: no trailing zeros (``0.499``, ``4``)."""
    text = repr(round(float(value), 10))
    return text[:-2] if text.endswith(".0") else text
