"""Whether a folder is a zarr store: the one check every part of SlideScope uses."""

from __future__ import annotations

from pathlib import Path

# zarr v3's one metadata file, then v2's: a group's attributes and its marker, an array's.
ROOT_METADATA = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def is_zarr_directory(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding zarr (v2 or v3) metadata at its root."""
    return root_metadata(path) is not None


def root_metadata(path: str | Path) -> Path | None:
    """The first of the store's root metadata files that exists, or None for no zarr store."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    return next((folder / n for n in ROOT_METADATA if (folder / n).is_file()), None)
