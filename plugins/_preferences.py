"""napari's reader preference for slide files: SlideScope, without the "Choose reader" dialog.

napari's built-in readers also claim ``.tif``/``.tiff``/``.zarr`` (and npe2 readers may claim
``.svs``), so opening such a file asks which reader to use. The first time the plugin is used
(its reader, a dock or the sample data) SlideScope records itself as the reader of the slide
extensions in napari's settings (``plugins.extension2reader``), unless the user chose another
reader for an extension already. README "napari plugin" says so, and how to undo it
(napari Preferences > Plugins > File extension readers).
"""

from __future__ import annotations

PLUGIN = "slidescope"
SLIDE_PATTERNS: tuple[str, ...] = (
    "*.svs", "*.tif", "*.tiff", "*.ndpi", "*.mrxs", "*.scn", "*.bif", "*.vms", "*.dcm", "*.zarr",
)  # fmt: skip


def ensure_reader_preference() -> list[str]:
    """Make SlideScope napari's reader for every slide pattern that has no reader chosen.

    Returns the patterns set now (empty when all were set already).
    """
    from napari.settings import get_settings

    plugins = get_settings().plugins
    current = dict(plugins.extension2reader)
    added = [p for p in SLIDE_PATTERNS if p not in current]
    if added:
        current.update(dict.fromkeys(added, PLUGIN))
        plugins.extension2reader = current
    return added
