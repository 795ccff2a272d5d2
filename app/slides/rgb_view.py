"""Lazy ``(y, x, 3)`` uint8 views over arrays stored in another axis order or channel count.

A slide's stored arrays are not always ``(y, x, 3)``: an OME-Zarr level may be ``(c, y, x)`` or
``(t, c, z, y, x)``, a TIFF may carry an alpha sample or be grey. :class:`RGBView` presents any
of them as the ``(y, x, 3)`` uint8 array the :class:`~slidescope.app.slides.slide.Slide`
contract promises, reading only the part that is sliced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.slides.errors import CorruptSlideError


class RGBView:
    """A read-only ``(y, x, 3)`` uint8 view of an array with named axes.

    Parameters
    ----------
    array : array-like
        Anything with ``shape``, ``dtype`` and numpy-style basic slicing (a zarr array).
    axes : str
        One letter per axis of ``array``, e.g. ``"cyx"``, ``"yxc"``, ``"tczyx"``, ``"yx"``.
        Axes other than ``y``, ``x`` and ``c`` are read at index 0.
    source : Path, optional
        The slide the array belongs to: a failed read (a damaged chunk) then raises
        :class:`CorruptSlideError` naming it.
    """

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, array: Any, axes: str, source: Path | None = None) -> None:
        axes = axes.lower()
        if "y" not in axes or "x" not in axes or len(axes) != len(array.shape):
            raise ValueError(f"axes {axes!r} do not describe an array of shape {array.shape}")
        self.array = array
        self.axes = axes
        self.source = source
        channels = int(array.shape[axes.index("c")]) if "c" in axes else 1
        if channels not in (1, 3, 4):
            raise ValueError(f"{channels} channels cannot be shown as RGB (1, 3 or 4 needed)")
        if np.dtype(array.dtype) != np.uint8:
            raise ValueError(f"pixels are {np.dtype(array.dtype)}, not 8-bit (uint8)")
        self.channels = channels
        self.shape = (int(array.shape[axes.index("y")]), int(array.shape[axes.index("x")]), 3)

    def __repr__(self) -> str:
        return f"<RGBView {self.shape} of {self.axes} {tuple(self.array.shape)}>"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        ys, xs, cs = normalise_key(key)
        index: list[Any] = []
        for axis in self.axes:
            if axis == "y":
                index.append(ys)
            elif axis == "x":
                index.append(xs)
            elif axis == "c":
                index.append(slice(0, min(self.channels, 3)))
            else:
                index.append(0)
        try:
            block = np.asarray(self.array[tuple(index)])
        except Exception as error:  # codecs raise anything on damaged bytes
            if self.source is None:
                raise
            raise CorruptSlideError(
                self.source, f"pixels cannot be read ({type(error).__name__}: {error})"
            ) from error
        # Integer y/x indices drop their axis; they are kept as length-1 slices above.
        kept = [a for a in self.axes if a in "yxc"]
        if kept == ["y", "x", "c"] and block.shape[2] == 3:
            return np.ascontiguousarray(block[:, :, cs])[squeeze_key(key)]
        if "c" in kept:
            planes = np.transpose(block, [kept.index(a) for a in "cyx"])
        else:
            planes = np.transpose(block, [kept.index(a) for a in "yx"])[np.newaxis]
        wanted = range(3)[cs]
        # Plane by plane: several times faster than a strided transpose of the whole block.
        out = np.empty((*planes.shape[1:], len(wanted)), dtype=np.uint8)
        for j, channel in enumerate(wanted):
            out[:, :, j] = planes[channel if len(planes) > 1 else 0]
        return out[squeeze_key(key)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


def as_slice(k: Any) -> slice:
    """An integer index as the one-long slice that keeps its axis."""
    if isinstance(k, (int, np.integer)):
        k = int(k)
        return slice(k, k + 1) if k != -1 else slice(-1, None)
    if isinstance(k, slice):
        return k
    raise TypeError(f"only integers and slices index a slide level, not {type(k).__name__}")


def _expand(key: Any) -> tuple[Any, Any, Any]:
    """A numpy index of a ``(y, x, c)`` array as exactly three items (no Ellipsis)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (3 - len(key))
    if len(key) != 3:
        raise IndexError(f"too many indices for a (y, x, 3) slide level: {key!r}")
    return key[0], key[1], key[2]


def normalise_key(key: Any) -> tuple[slice, slice, slice]:
    """The y, x and channel ranges an index reads, each as a slice (axes kept)."""
    ys, xs, cs = _expand(key)
    return as_slice(ys), as_slice(xs), as_slice(cs)


def squeeze_key(key: Any) -> tuple[Any, ...]:
    """Drop the axes that the caller indexed with an integer, as numpy would."""
    return tuple(0 if isinstance(k, (int, np.integer)) else slice(None) for k in _expand(key))
