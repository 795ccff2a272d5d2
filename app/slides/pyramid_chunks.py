"""The chunks of a converted pyramid: each computed, encoded and written whole, from any thread.

A level the source has is read from the source through the backend's own read hook (a
TIFF's tiles decoded directly, without zarr's per-chunk overhead), or, where its JPEG tiles
are the chunks, copied as they are stored. A level it lacks is
the 2×2 mean of four chunks of the level above, read back from the output's files.
Every chunk file is written to a temporary sibling and renamed, so one that exists is whole.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.slides.chunk_codec import ChunkCodec
from slidescope.app.slides.slide import Slide


@dataclass(frozen=True)
class PyramidLevel:
    """One output level: its size and where its pixels come from."""

    width: int
    height: int
    source_level: int | None  # None: the 2×2 mean of the output level above


class ChunkWriter:
    """Computes, encodes and writes one chunk of the output; safe to call from many threads.

    A level the source has is read from the source through the backend's own fast road
    (a TIFF's tiles are decoded directly, without zarr's per-chunk overhead); where its
    JPEG tiles are the chunks (``stored``), their bytes are copied as they are. A level it
    lacks is the 2×2 mean of the four chunks of the level above, read back from the
    output's files (already written, whole, in the page cache): that decodes each chunk of
    the level above once more, cheaper than keeping a strip of every level in memory, and
    a resumed run needs nothing but what is on disk.

    Parameters
    ----------
    slide : Slide
        The source.
    out : Path
        The output group.
    levels : list of PyramidLevel
        The output levels.
    codecs : list of ChunkCodec
        Each level's codec (all with the same chunk size).
    stored : list
        Per level, the source reader whose stored JPEG tiles are that level's chunks
        (``Slide._stored_tiles``), or None.
    """

    def __init__(
        self,
        slide: Slide,
        out: Path,
        levels: list[PyramidLevel],
        codecs: list[ChunkCodec],
        stored: list[Any],
    ) -> None:
        self.slide = slide
        self.out = out
        self.levels = levels
        self.codecs = codecs
        self.stored = stored
        self.chunk = codecs[0].chunk
        # glass is one colour: its chunks are encoded once per colour and their bytes reused
        self.uniform_chunks: dict[tuple[int, bytes], bytes] = {}
        self.uniform_colours: dict[bytes, bytes] = {}  # their bytes -> (r, g, b)

    def write(self, index: int, row: int, col: int) -> int:
        """Write chunk (``row``, ``col``) of level ``index``; returns 1 (chunks written)."""
        level, size = self.levels[index], self.chunk
        path = f"{self.out}/{index}/0/{row}/{col}"  # a str: pathlib costs 0.1 ms a chunk
        stored = self.stored[index]
        if stored is not None:
            data = stored.stored_tile(row, col)
            if data is not None:  # the source's JPEG tile is this chunk, bit for bit
                write_atomically(path, data)
                return 1
        y0, y1 = row * size, min(level.height, (row + 1) * size)
        x0, x1 = col * size, min(level.width, (col + 1) * size)
        if level.source_level is not None:
            # the backend's read hook: for a TIFF, tiles decoded straight from the file
            pixels = self.slide._read_level(level.source_level, y0, y1, x0, x1)[..., :3]
        else:
            whole = (y1 - y0, x1 - x0) == (size, size)
            glass = self._uniform_block(index - 1, 2 * row, 2 * col) if whole else None
            if glass is not None:  # four chunks of one colour halve to that colour
                pixels = np.broadcast_to(glass, (size, size, 3))
            else:
                above = self._read_block(index - 1, 2 * row, 2 * col)
                pixels = halve(above[: 2 * (y1 - y0), : 2 * (x1 - x0)])
        write_atomically(path, self._encode(index, pixels))
        return 1

    def _uniform_block(self, index: int, row: int, col: int) -> np.ndarray | None:
        """The colour of chunks (``row``..``row+1``, ``col``..``col+1``) if all are that one.

        Recognised by their bytes: a uniform chunk's bytes are the ones this run stored
        for its colour (a resumed run, which has not seen them yet, decodes instead).
        """
        colours = set()
        for dr in range(2):
            for dc in range(2):
                with open(f"{self.out}/{index}/0/{row + dr}/{col + dc}", "rb") as fh:
                    colour = self.uniform_colours.get(fh.read())
                if colour is None:
                    return None
                colours.add(colour)
        if len(colours) != 1:
            return None
        return np.frombuffer(colours.pop(), np.uint8)

    def _read_block(self, index: int, row: int, col: int) -> np.ndarray:
        """Chunks (``row``..``row+1``, ``col``..``col+1``) of output level ``index``, padded.

        Returns a ``(2 * chunk, 2 * chunk, 3)`` block; where the level ends it holds the
        fill value, as zarr's padded edge chunks do.
        """
        size, level, codec = self.chunk, self.levels[index], self.codecs[index]
        block = np.full((2 * size, 2 * size, 3), 255, np.uint8)
        folder = f"{self.out}/{index}/0"
        for dr in range(2):
            for dc in range(2):
                if (row + dr) * size >= level.height or (col + dc) * size >= level.width:
                    continue
                with open(f"{folder}/{row + dr}/{col + dc}", "rb") as fh:
                    data = fh.read()
                codec.decode(data, block[dr * size : (dr + 1) * size, dc * size : (dc + 1) * size])
        return block

    def _encode(self, index: int, part: np.ndarray) -> bytes:
        """The bytes of the chunk holding ``part`` (``(y, x, 3)``) as level ``index`` stores them.

        A whole chunk of one colour (glass) is encoded once and its bytes reused; it is
        checked before the costly copy into a contiguous block.
        """
        chunk, codec = self.chunk, self.codecs[index]
        whole = part.shape[:2] == (chunk, chunk)
        colour = part[0, 0]
        key = (id(codec), colour.tobytes())
        uniform = whole and is_uniform(part, colour)
        if uniform and key in self.uniform_chunks:
            return self.uniform_chunks[key]
        if whole:
            block = part
        else:  # an edge chunk: zarr chunks are whole, padded with the fill value
            block = np.full((chunk, chunk, 3), 255, np.uint8)
            block[: part.shape[0], : part.shape[1]] = part
        encoded = codec.encode(block)
        if uniform:
            self.uniform_chunks[key] = encoded
            self.uniform_colours[encoded] = colour.tobytes()
        return encoded


def halve(block: np.ndarray) -> np.ndarray:
    """2×2 mean of a ``(2h, 2w, 3)`` uint8 block, rounded to nearest (an odd last row or
    column is dropped).

    Pillow's ``reduce`` gives the same bytes as the arithmetic in numpy, twice as fast on
    interleaved RGB (numpy's strided channel loops are slow).
    """
    from PIL import Image

    h, w, _c = block.shape
    even = np.ascontiguousarray(block[: h // 2 * 2, : w // 2 * 2])
    return np.asarray(Image.fromarray(even, "RGB").reduce(2))


def is_uniform(pixels: np.ndarray, colour: np.ndarray) -> bool:
    """Whether every pixel of ``(y, x, c)`` is ``colour``.

    The first row is compared as bytes (tissue fails there at once); then the rows, as
    contiguous runs of bytes, are compared with it in one vectorised pass (as fast as
    comparing the block's bytes, measured).
    """
    expected = np.tile(colour, pixels.shape[1])
    if pixels[0].tobytes() != expected.tobytes():
        return False
    rows = pixels.reshape(pixels.shape[0], -1)
    return bool((rows == expected).all())


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write one chunk file via a temporary sibling: a chunk file that exists is whole."""
    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(partial, path)
