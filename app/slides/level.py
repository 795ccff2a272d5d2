"""A slide level as its callers see it: a lazy ``(y, x, 3)`` array that fails only as ``SlideError``.

Backends keep their levels as whatever reads them fastest (a zarr view of a TIFF's tiles, an
:class:`~slidescope.app.slides.rgb_view.RGBView` of an OME-Zarr array, an OpenSlide reader).
:class:`SlideLevel` is the read boundary in front of each: slicing it either returns pixels
or raises a :class:`~slidescope.app.slides.errors.SlideError` naming the file, the level and
the reason, never a codec's own exception and never the zeros a store gives for a missing tile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from slidescope.app.slides.file_errors import reading
from slidescope.app.slides.rgb_view import normalise_key


class DamageCheck(Protocol):
    """What knows a level's damaged tiles (a :class:`~.tile_reader.TileReader`)."""

    damaged: dict[int, str]

    def check(self, y0: int, y1: int, x0: int, x1: int) -> None: ...


class SlideLevel:
    """One level of a slide: slicing reads pixels, failures are ``SlideError``.

    Parameters
    ----------
    array : array-like
        The backend's level, ``(y, x, 3)`` uint8, numpy-style basic slicing.
    path : Path
        The slide file, named in errors.
    level : int
        The level's index, named in errors.
    damage : DamageCheck, optional
        Refuses windows that touch a damaged tile (empty, past the end of the file) before
        the store would return its fill value for them.
    """

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(
        self, array: Any, path: Path, level: int, damage: DamageCheck | None = None
    ) -> None:
        self.array = array
        self.path = path
        self.level = level
        self.damage = damage if damage is not None and damage.damaged else None
        self.shape = (int(array.shape[0]), int(array.shape[1]), 3)

    @property
    def chunks(self) -> Any:
        """The stored chunking, where the backend has one (the display sizes its tiles by it)."""
        return getattr(self.array, "chunks", None)

    def __repr__(self) -> str:
        damaged = f" damaged tiles={sorted(self.damage.damaged)}" if self.damage else ""
        return f"<SlideLevel {self.level} {self.shape} of {type(self.array).__name__}{damaged}>"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if self.damage is not None:
            y, x = _window(key, self.shape)
            self.damage.check(y.start, y.stop, x.start, x.stop)
        with reading(self.path, f"level {self.level}"):
            return np.asarray(self.array[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


def _window(key: Any, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The y and x ranges (step 1, clipped) that an index touches."""
    out = []
    for k, n in zip(normalise_key(key)[:2], shape[:2]):
        start, stop, step = k.indices(n)
        if step < 0:
            start, stop = stop + 1, start + 1
        out.append(slice(start, max(start, stop)))
    return out[0], out[1]
