"""Regions of a zarr v2 ``(c, y, x)`` level, decoded straight from its chunk files.

zarr-python 3 spends well over a millisecond of Python and asyncio per chunk read, and
then regroups NGFF's planar chunk into the ``(y, x, 3)`` a slide is read as: a converted
pyramid read through it served 0.15-0.27 of the reads per second of the TIFF it came
from, holding the very same JPEG tiles. :class:`ChunkFileReader` is the fast road behind
``OmeZarrSlide.read_region`` for the layout ``slidescope convert`` writes (zarr v2 in a
folder, ``/`` or ``.`` keys, uint8, C order, one chunk holding every channel or one
channel): it reads each chunk file with one ``open``/``read``, decodes it with the codecs
``.zarray`` names, and copies it once into the output, like
:class:`~slidescope.app.slides.tile_reader.TileReader` does for a TIFF. JPEG chunks stored
interleaved (``imagecodecs_jpeg`` followed by the ``Shuffle`` filter that makes them
planar, see :mod:`slidescope.app.slides.chunk_codec`) are decoded to ``(y, x, 3)``
directly: the shuffle to planes and back is skipped. Other layouts (zarr v3, remote
stores) keep zarr's road (:class:`~slidescope.app.slides.tile_reader.ChunkReader`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.slides.decode_buffer import cached_empty, thread_buffer
from slidescope.app.slides.errors import CorruptSlideError
from slidescope.app.slides.tile_cache import TileCache
from slidescope.app.slides.tile_reader import assemble

# A chunk file larger than this many times its decoded size (plus a little) is no chunk
_MAX_COMPRESSED_RATIO = 4
_MAX_OVERHEAD = 64 * 1024


class ChunkFileReader:
    """Reads windows of one zarr v2 ``(3, height, width)`` uint8 level as ``(h, w, 3)``.

    Parameters
    ----------
    folder : Path
        The array's folder (holding ``.zarray``).
    meta : mapping
        The parsed ``.zarray`` (checked by :func:`chunk_file_reader`).
    slide_path : Path
        The slide, named in errors.
    level : int
        The pyramid level (for messages and cache keys).
    cache : TileCache
        Shared by every level of the slide; holds chunks that reads only partly cover.
    """

    def __init__(
        self,
        folder: Path,
        meta: Mapping[str, Any],
        slide_path: Path,
        level: int,
        cache: TileCache,
    ) -> None:
        import numcodecs

        self.folder = str(folder)
        self.slide_path = slide_path
        self.level = level
        self.cache = cache
        _, self.height, self.width = (int(n) for n in meta["shape"])
        self.per_chunk, ch, cw = (int(n) for n in meta["chunks"])
        self.chunk = (ch, cw)
        self.separator = meta.get("dimension_separator") or "."
        fill = meta.get("fill_value")
        self.fill = int(fill) if isinstance(fill, int | float) else 0
        compressor = meta.get("compressor")
        self.compressor = numcodecs.get_codec(dict(compressor)) if compressor else None
        self.filters = [numcodecs.get_codec(dict(f)) for f in meta.get("filters") or []]
        self.max_file_bytes = _MAX_COMPRESSED_RATIO * self.per_chunk * ch * cw + _MAX_OVERHEAD
        # JPEG stored interleaved, made planar by a Shuffle filter: decoded as (y, x, 3)
        self.interleaved = (
            compressor is not None
            and compressor.get("id") == "imagecodecs_jpeg"
            and self.per_chunk == 3
            and [(f.get("id"), f.get("elementsize")) for f in meta.get("filters") or []]
            == [("shuffle", ch * cw)]
        )
        self._local = threading.local()

    def tile(self, row: int, col: int) -> np.ndarray:
        """The whole chunk at (row, column) as ``(chunk height, chunk width, 3)``, cached."""
        key = (("zarr-chunk", self.level), row, col)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        block = self._decode(row, col, None)
        self.cache.put(key, block)
        return block

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The window ``[y0:y1, x0:x1]`` (inside the level) as ``(h, w, 3)`` uint8.

        A chunk wholly inside the window is decoded into this thread's reused buffer and
        copied once, not cached; a chunk the window only partly covers goes through the
        cache, where the next, neighbouring read finds it.
        """
        return assemble(
            y0, y1, x0, x1, self.chunk, self.tile, lambda r, c: self._decode(r, c, self._buffer())
        )

    def _buffer(self) -> np.ndarray:
        return thread_buffer(self._local, (*self.chunk, 3))

    def _file(self, channel_chunk: int, row: int, col: int) -> bytes | None:
        """The bytes of one chunk file, or None where it is missing (the fill value)."""
        sep = self.separator
        path = f"{self.folder}/{channel_chunk}{sep}{row}{sep}{col}"
        try:
            with open(path, "rb") as fh:
                data = fh.read(self.max_file_bytes + 1)
        except FileNotFoundError:
            return None
        if len(data) > self.max_file_bytes:
            raise CorruptSlideError(
                self.slide_path,
                f"chunk {channel_chunk}{sep}{row}{sep}{col} of level {self.level} is larger "
                "than any chunk of its size can be; the file is damaged",
            )
        return data

    def _decode(self, row: int, col: int, out: np.ndarray | None) -> np.ndarray:
        """Chunk (row, column) as ``(chunk height, chunk width, 3)``, into ``out`` if given."""
        ch, cw = self.chunk
        block = out if out is not None else cached_empty((ch, cw, 3))
        for first in range(0, 3, self.per_chunk):
            data = self._file(first // self.per_chunk, row, col)
            if data is None:
                block[..., first : first + self.per_chunk] = self.fill
                continue
            try:
                if self.interleaved:
                    assert self.compressor is not None
                    self.compressor.decode(data, out=block)
                    continue
                decoded: Any = data if self.compressor is None else self.compressor.decode(data)
                for f in reversed(self.filters):
                    decoded = f.decode(decoded)
                planes = np.frombuffer(memoryview(decoded), np.uint8).reshape(-1, ch, cw)
                for i in range(self.per_chunk):
                    # plane by plane: 4x faster than one copy of the transposed view
                    block[..., first + i] = planes[i]
            except CorruptSlideError:
                raise
            except Exception as error:  # each codec raises its own kinds on damaged bytes
                raise CorruptSlideError(
                    self.slide_path,
                    f"chunk ({row}, {col}) of level {self.level} cannot be decoded "
                    f"({type(error).__name__}: {error}); the file is damaged",
                ) from error
        return block


def chunk_file_reader(
    array: Any, axes: str, slide_path: Path, level: int, cache: TileCache
) -> ChunkFileReader | None:
    """A :class:`ChunkFileReader` for ``array`` when it has the layout it reads, else None.

    That layout: zarr format 2 in a local folder, axes ``cyx`` with 3 channels, uint8, C
    order, no object codecs, chunks holding all 3 channels or 1.
    """
    if axes != "cyx" or getattr(array.metadata, "zarr_format", None) != 2:
        return None
    store = array.store
    root = getattr(store, "root", None)
    if root is None:
        return None
    folder = Path(root) / array.path
    try:
        meta = json.loads((folder / ".zarray").read_text())
        shape, chunks = [int(n) for n in meta["shape"]], [int(n) for n in meta["chunks"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (
        len(shape) != 3
        or shape[0] != 3
        or len(chunks) != 3
        or chunks[0] not in (1, 3)
        or min(chunks) < 1
        or meta.get("dtype") != "|u1"
        or meta.get("order", "C") != "C"
        or meta.get("dimension_separator", ".") not in ("/", ".")
    ):
        return None
    try:
        return ChunkFileReader(folder, meta, slide_path, level, cache)
    except Exception:  # a codec numcodecs does not know: zarr's road says so on read
        return None
