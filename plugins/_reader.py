"""The reader contribution: a slide file or OME-Zarr folder as a multiscale RGB layer in µm."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slidescope.app.display.slide_layer import slide_layer_data
from slidescope.app.display.tile_cache import TileCache
from slidescope.app.project.project import is_slide_path
from slidescope.plugins._preferences import ensure_reader_preference

LayerData = tuple[Any, dict[str, Any], str]

# one bounded cache for every slide opened through the plugin
PLUGIN_CACHE = TileCache()


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """napari's reader hook: a reader when every path is a slide, else None (not ours)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(is_slide_path(p) or _is_ome_zarr(Path(p)) for p in paths):
        return None
    ensure_reader_preference()  # next time napari asks no one which reader to use
    return read_slides


def read_slides(path: str | list[str]) -> list[LayerData]:
    """Open slides as layer-data tuples (errors propagate for napari to show: they name the file)."""
    from slidescope.app.slides import open_slide

    paths = [path] if isinstance(path, str) else list(path)
    layers = []
    for p in paths:
        slide = open_slide(p)
        layers.append(slide_layer_data(slide, PLUGIN_CACHE).layer_data)
    return layers


def _is_ome_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zattrs"))
