"""The chunks of a converted pyramid: each computed, encoded and written whole, from any thread.

A level the source has is read from the source through the backend's own read hook (a
TIFF's tiles decoded directly, without zarr's per-chunk overhead). A level it lacks is
the 2×2 mean of four chunks of the level above, read back from the output's files.
Every chunk file is written to a temporary sibling and renamed, so one that exists is whole.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

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
    (a TIFF's tiles are decoded directly, without zarr's per-chunk overhead). A level it
    lacks is the 2×2 mean of the four chunks of the level above, read back from the
    output's files (already written, whole, in the page cache): that decodes each chunk of
    the level above once more, cheaper than keeping a strip of every level in memory, and
    a resumed run needs nothing but what is on disk.
    """

    def __init__(
        self,
        slide: Slide,
        out: Path,
        levels: list[PyramidLevel],
        codec: ChunkCodec,
    ) -> None:
        self.slide = slide
        self.out = out
        self.levels = levels
        self.codec = codec
        self.chunk = codec.chunk
        self.channel_chunk = codec.channels_per_chunk
        # glass is one colour: its chunks are encoded once per colour and their bytes reused
        self.uniform_chunks: dict[bytes, bytes] = {}
        self.uniform_colours: dict[bytes, bytes] = {}  # their bytes -> (r, g, b)

    def write(self, index: int, row: int, col: int, channels: list[int]) -> int:
        """Write channel chunks ``channels`` of chunk (``row``, ``col``) of level ``index``.

        Returns the number of chunk files written.
        """
        level, size = self.levels[index], self.chunk
        y0, y1 = row * size, min(level.height, (row + 1) * size)
        x0, x1 = col * size, min(level.width, (col + 1) * size)
        if level.source_level is not None:
            # the backend's read hook: for a TIFF, tiles decoded straight from the file
            pixels = self.slide._read_level(level.source_level, y0, y1, x0, x1)[..., :3]
            planes = pixels.transpose(2, 0, 1)
        else:
            whole = (y1 - y0, x1 - x0) == (size, size)
            glass = self._uniform_block(index - 1, 2 * row, 2 * col) if whole else None
            if glass is not None:  # four chunks of one colour halve to that colour
                planes = np.broadcast_to(glass[:, None, None], (3, size, size))
            else:
                above = self._read_block(index - 1, 2 * row, 2 * col)
                planes = halve(above[:, : 2 * (y1 - y0), : 2 * (x1 - x0)])
        folder = self.out / str(index)
        for c in channels:
            part = planes[c * self.channel_chunk : (c + 1) * self.channel_chunk]
            write_atomically(folder / f"{c}/{row}/{col}", self._encode(part))
        return len(channels)

    def _uniform_block(self, index: int, row: int, col: int) -> np.ndarray | None:
        """The colour of chunks (``row``..``row+1``, ``col``..``col+1``) if all are that one.

        Recognised by their bytes: a uniform chunk's bytes are the ones this run stored
        for its colour (a resumed run, which has not seen them yet, decodes instead).
        """
        colours = set()
        for dr in range(2):
            for dc in range(2):
                for c in range(3 // self.channel_chunk):
                    path = self.out / str(index) / f"{c}/{row + dr}/{col + dc}"
                    colour = self.uniform_colours.get(path.read_bytes())
                    if colour is None:
                        return None
                    colours.add(colour)
        if len(colours) != 1:
            return None
        return np.frombuffer(colours.pop(), np.uint8)

    def _read_block(self, index: int, row: int, col: int) -> np.ndarray:
        """Chunks (``row``..``row+1``, ``col``..``col+1``) of output level ``index``, padded.

        Returns a ``(3, 2 * chunk, 2 * chunk)`` block; where the level ends it holds the
        fill value, as zarr's padded edge chunks do.
        """
        size, level = self.chunk, self.levels[index]
        block = np.full((3, 2 * size, 2 * size), 255, np.uint8)
        for dr in range(2):
            for dc in range(2):
                if (row + dr) * size >= level.height or (col + dc) * size >= level.width:
                    continue
                for c in range(0, 3, self.channel_chunk):
                    path = (
                        self.out / str(index) / f"{c // self.channel_chunk}/{row + dr}/{col + dc}"
                    )
                    block[
                        c : c + self.channel_chunk,
                        dr * size : (dr + 1) * size,
                        dc * size : (dc + 1) * size,
                    ] = self.codec.decode(path.read_bytes())
        return block

    def _encode(self, part: np.ndarray) -> bytes:
        """The bytes of the chunk holding ``part`` (``(c, y, x)``) as the compressor stores them.

        A whole chunk of one colour (glass) is encoded once and its bytes reused; it is
        checked before the costly copy into a contiguous block.
        """
        chunk = self.chunk
        whole = part.shape[1:] == (chunk, chunk)
        colour = part[:, 0, 0]
        key = part.shape[0].to_bytes(1, "little") + colour.tobytes()
        uniform = whole and is_uniform(part.transpose(1, 2, 0), colour)
        if uniform and key in self.uniform_chunks:
            return self.uniform_chunks[key]
        if whole:
            block = part
        else:  # an edge chunk: zarr chunks are whole, padded with the fill value
            block = np.full((part.shape[0], chunk, chunk), 255, np.uint8)
            block[:, : part.shape[1], : part.shape[2]] = part
        encoded = self.codec.encode(block)
        if uniform:
            self.uniform_chunks[key] = encoded
            if part.shape[0] == 3:
                self.uniform_colours[encoded] = colour.tobytes()
        return encoded


def halve(block: np.ndarray) -> np.ndarray:
    """2×2 mean of a ``(c, 2h, 2w)`` block, rounded to nearest.

    Rows are summed first into one uint16 array that is then updated in place: three
    times faster than widening four strided views.
    """
    _c, h, w = block.shape
    block = block[:, : h // 2 * 2, : w // 2 * 2]
    rows = block[:, 0::2].astype(np.uint16)
    rows += block[:, 1::2]
    summed = rows[:, :, 0::2] + rows[:, :, 1::2]
    summed += 2
    summed >>= 2
    return summed.astype(np.uint8)


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


def write_atomically(path: Path, data: bytes) -> None:
    """Write one chunk file via a temporary sibling: a chunk file that exists is whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(partial, path)
