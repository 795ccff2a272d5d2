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


def multiscales_entry(
    name: str,
    scales: list[tuple[float, float]],
    unit: str | None,
    channel: bool = True,
    translations: list[tuple[float, float] | None] | None = None,
    translation: tuple[float, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``multiscales`` entry: levels ``"0"``, ``"1"``, ... with (y, x) scales in ``unit``.

    The one builder of NGFF multiscales metadata (slide pyramids and heatmap overlays).

    Parameters
    ----------
    name : str
        The image's name.
    scales : list of (float, float)
        Per level, the (y, x) size of one pixel in ``unit``.
    unit : str or None
        A UDUNITS-2 space unit (``"micrometer"``), or None for none.
    channel : bool
        Whether the arrays have a leading ``c`` axis (its scale is 1).
    translations : list, optional
        Per level, a (y, x) translation after the scale, or None for none.
    translation : (float, float), optional
        A translation of the whole multiscale (after each level's own transformations).
    extra : dict, optional
        Further keys of the entry (``type``, ``metadata``).
    """
    axes: list[dict[str, str]] = [{"name": "c", "type": "channel"}] if channel else []
    for axis in ("y", "x"):
        entry = {"name": axis, "type": "space"}
        if unit:
            entry["unit"] = unit
        axes.append(entry)
    lead = [1.0] if channel else []
    datasets = []
    for index, (sy, sx) in enumerate(scales):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [*lead, sy, sx]}]
        shift = translations[index] if translations else None
        if shift is not None:
            transforms.append({"type": "translation", "translation": [*[0.0] * len(lead), *shift]})
        datasets.append({"path": str(index), "coordinateTransformations": transforms})
    result: dict[str, Any] = {"version": NGFF_VERSION, "name": name, "axes": axes}
    result["datasets"] = datasets
    if translation is not None:
        result["coordinateTransformations"] = [
            {"type": "translation", "translation": [*[0.0] * len(lead), *translation]}
        ]
    result.update(extra or {})
    return result


def multiscales(
    name: str,
    level_sizes: list[tuple[int, int]],
    mpp: tuple[float, float] | None,
    step: int,
) -> dict[str, Any]:
    """The ``multiscales`` entry of a slide pyramid: levels of ``(width, height)``.

    Scales are micrometres per pixel when the slide's mpp is known (level-0 mpp times the
    level's downsample), else plain level-0 pixels per level pixel. ``step``: the side of
    the box a level the source lacks averages from the level above.
    """
    mx, my = mpp if mpp is not None else (1.0, 1.0)
    w0, h0 = level_sizes[0]
    return multiscales_entry(
        name,
        [(my * h0 / h, mx * w0 / w) for w, h in level_sizes],
        "micrometer" if mpp is not None else None,
        extra={
            "type": "mean",
            "metadata": {
                "description": f"{step}x{step} mean where the source had no level of its own"
            },
        },
    )


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
