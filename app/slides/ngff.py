"""OME-NGFF 0.4 metadata for an RGB slide pyramid: axes, scales, channels.

SlideScope writes NGFF 0.4 (zarr format 2, ``/``-separated chunk keys): every reader in
this environment opens it (ome-zarr-py, napari-ome-zarr, zarr-python 3, our
``OmeZarrSlide``), and so do the older and Java readers (QuPath, Fiji/MoBIE, Bio-Formats)
that do not read 0.5 / zarr format 3 yet.
"""

from __future__ import annotations

from typing import Any

NGFF_VERSION = "0.4"

RGB_CHANNELS = [
    {"label": "red", "color": "FF0000"},
    {"label": "green", "color": "00FF00"},
    {"label": "blue", "color": "0000FF"},
]


def multiscales(
    name: str,
    level_sizes: list[tuple[int, int]],
    mpp: tuple[float, float] | None,
) -> dict[str, Any]:
    """The ``multiscales`` entry for levels ``"0"``, ``"1"``, ... of ``(width, height)``.

    Scales are micrometres per pixel when the slide's mpp is known (level-0 mpp times the
    level's downsample), else plain level-0 pixels per level pixel.
    """
    unit = "micrometer" if mpp is not None else None
    mx, my = mpp if mpp is not None else (1.0, 1.0)
    w0, h0 = level_sizes[0]
    axes: list[dict[str, str]] = [{"name": "c", "type": "channel"}]
    for axis in ("y", "x"):
        entry = {"name": axis, "type": "space"}
        if unit:
            entry["unit"] = unit
        axes.append(entry)
    datasets = [
        {
            "path": str(index),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, my * h0 / h, mx * w0 / w]}
            ],
        }
        for index, (w, h) in enumerate(level_sizes)
    ]
    return {
        "version": NGFF_VERSION,
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": "mean",
        "metadata": {"description": "2x2 mean where the source had no level of its own"},
    }


def omero(name: str) -> dict[str, Any]:
    """Channel rendering so that viewers show the three channels as one RGB image."""
    return {
        "name": name,
        "version": NGFF_VERSION,
        "rdefs": {"model": "color", "defaultZ": 0, "defaultT": 0},
        "channels": [
            {
                **channel,
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": {"start": 0, "end": 255, "min": 0, "max": 255},
            }
            for channel in RGB_CHANNELS
        ],
    }
