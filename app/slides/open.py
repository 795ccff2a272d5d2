"""``open_slide``: one factory for every slide format, chosen by what the file holds.

Like TIAToolbox's ``WSIReader.open``, the file's content decides, not its suffix: TIFF and
BigTIFF magic bytes go to tifffile (served from the file's own tiles) and fall back to
OpenSlide when tifffile cannot serve them; a directory with zarr metadata is an OME-Zarr;
anything else is offered to OpenSlide (MIRAX, DICOM, VMS, ...).
"""

from __future__ import annotations

from pathlib import Path

from slidescope.app.slides.errors import (
    SlideError,
    SlideNotFoundError,
    UnsupportedSlideError,
)
from slidescope.app.slides.slide import Slide
from slidescope.app.slides.zarr_folder import is_zarr_directory

# Little- and big-endian classic TIFF, then BigTIFF.
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def open_slide(path: str | Path, mpp: float | tuple[float, float] | None = None) -> Slide:
    """Open a whole-slide image of any supported format.

    Parameters
    ----------
    path : str or Path
        A slide file (``.svs``, ``.tiff``, ``.ndpi``, ``.mrxs``, ``.dcm``, ...) or an
        OME-Zarr directory.
    mpp : float or (float, float), optional
        Microns per pixel at level 0, overriding what the file says (or does not say).

    Returns
    -------
    Slide
        The open slide; use it as a context manager or call ``close()``.

    Raises
    ------
    SlideNotFoundError
        The path does not exist.
    UnsupportedSlideError
        No backend reads the file.
    CorruptSlideError, UnsupportedCompressionError
        The file is a slide but damaged or compressed with an unknown codec.
    """
    path = Path(path)
    override = _mpp_pair(path, mpp)
    if not path.exists():
        raise SlideNotFoundError(path, "no such file or directory; check the path")
    if path.is_dir():
        from slidescope.app.slides.omezarr_slide import OmeZarrSlide

        if not is_zarr_directory(path):
            raise UnsupportedSlideError(
                path, "a directory that is no OME-Zarr (no zarr.json or .zattrs inside)"
            )
        return OmeZarrSlide(path, override)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as error:
        raise UnsupportedSlideError(path, f"the file cannot be read ({error})") from error
    if head in TIFF_MAGIC:
        from slidescope.app.slides.tiff_slide import NotServableByTiff, TiffSlide

        try:
            return TiffSlide(path, override)
        except NotServableByTiff as reason:
            try:
                return _open_with_openslide(path, override, why_not_tiff=str(reason))
            except UnsupportedSlideError:
                if not reason.strips_only:
                    raise
            # A plain striped TIFF no scanner format claims: tifffile serves it strip by strip.
            return TiffSlide(path, override, allow_strips=True)
    return _open_with_openslide(path, override)


def _open_with_openslide(
    path: Path, mpp: tuple[float, float] | None, why_not_tiff: str | None = None
) -> Slide:
    from slidescope.app.slides.openslide_slide import OpenSlideSlide

    try:
        return OpenSlideSlide(path, mpp)
    except UnsupportedSlideError as error:
        if why_not_tiff:
            raise UnsupportedSlideError(
                path, f"a TIFF that tifffile cannot serve ({why_not_tiff}) and OpenSlide rejects"
            ) from error
        raise UnsupportedSlideError(
            path,
            "not a slide: neither a TIFF, an OME-Zarr, nor a format OpenSlide reads "
            "(.svs .tif .ndpi .mrxs .vms .scn .bif .dcm)",
        ) from error


def _mpp_pair(path: Path, mpp: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if mpp is None:
        return None
    pair = (float(mpp), float(mpp)) if isinstance(mpp, (int, float)) else tuple(map(float, mpp))
    if len(pair) != 2 or not all(0 < v < float("inf") for v in pair):
        raise SlideError(path, f"microns per pixel must be positive numbers, not {mpp!r}")
    return pair[0], pair[1]
