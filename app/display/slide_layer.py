"""A slide as napari layer data: a multiscale RGB image over cached levels, placed in µm.

Shared by the desktop window and the plugin's reader, so a slide opened either way lands at
the same place with the same scale bar. Builds plain layer-data tuples; no napari import.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from slidescope.app.display.placement import SlideSpace, slide_placement
from slidescope.app.display.tile_cache import CachedLevel, TileCache, cached_levels

METADATA_KEY = "slidescope"


@dataclass
class SlideLayerData:
    """What napari needs to show one slide, and what to release when it goes.

    Attributes
    ----------
    levels : list of CachedLevel
        Level 0 first.
    kwargs : dict
        ``add_image`` keyword arguments (name, rgb, multiscale, scale, translate, units,
        metadata).
    token : hashable
        The slide's key in the tile cache (``cache.forget(token)`` frees it).
    space : SlideSpace
        The slide's world, for overlays.
    """

    levels: list[CachedLevel]
    kwargs: dict[str, Any]
    token: Hashable
    space: SlideSpace
    cache: TileCache = field(repr=False)

    @property
    def layer_data(self) -> tuple[list[CachedLevel], dict[str, Any], str]:
        """A napari layer-data tuple ``(data, kwargs, "image")`` (what a reader returns)."""
        return (self.levels, self.kwargs, "image")

    def release(self) -> None:
        """Drop the slide's tiles from the cache."""
        self.cache.forget(self.token)


def slide_layer_data(slide: Any, cache: TileCache, name: str | None = None) -> SlideLayerData:
    """The multiscale layer of an open :class:`~slidescope.app.slides.slide.Slide`.

    Parameters
    ----------
    slide : Slide
        The open slide (it stays open as long as the layer reads from it).
    cache : TileCache
        The tile cache the levels read through.
    name : str, optional
        The layer's name; the slide id by default.
    """
    levels, token = cached_levels(list(slide.levels), cache, source=slide)
    space = SlideSpace.of(slide)
    identity = slide.identity
    kwargs: dict[str, Any] = {
        "name": name or identity.slide_id,
        "rgb": True,
        "multiscale": True,
        "contrast_limits": (0, 255),
        "metadata": {
            METADATA_KEY: {
                "path": str(slide.path),
                "identity": identity.to_dict(),
                "downsamples": list(slide.downsamples),
                "format": slide.format,
            }
        },
        **slide_placement(space).kwargs,
    }
    return SlideLayerData(levels=levels, kwargs=kwargs, token=token, space=space, cache=cache)
