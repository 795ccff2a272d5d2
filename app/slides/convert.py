"""Convert any slide into an OME-Zarr (NGFF 0.4) pyramid: bounded memory and resumable.

How it stays correct when stopped at any point:

- the group's ``slidescope`` attribute (``complete: false``) is written first and the
  ``multiscales`` metadata last, so no NGFF reader sees a pyramid before it is finished,
  and :class:`~slidescope.app.slides.omezarr_slide.OmeZarrSlide` refuses the unfinished
  group with "run convert again";
- every chunk is encoded here and written to a temporary sibling, then renamed, so a
  chunk file that exists is whole; a second run only writes the chunks that do not exist.

Memory stays bounded: one row of chunks (``chunk`` px high, the level's full width) of
one level is in memory at a time, two rows of the level above when a level is computed.
Levels the source has (at 2×, 4×, ... within 2 %) are copied from it; the others are 2×2
means of the level above, read back from the output.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.jobs import Job, Progress
from slidescope.app.slides.errors import SlideError
from slidescope.app.slides.ngff import NGFF_VERSION, multiscales, omero
from slidescope.app.slides.slide import Slide, slide_id_of

COMPRESSIONS = ("zstd", "lz4", "jpeg", "none")
DEFAULT_COMPRESSION = "zstd"
DEFAULT_CHUNK = 512
JPEG_QUALITY = 90
ZSTD_BLOCK = 1 << 20


class ConversionError(SlideError):
    """The output cannot be written or resumed (a different slide's conversion, ...)."""


@dataclass(frozen=True)
class _Level:
    """One output level: its size and where its pixels come from."""

    width: int
    height: int
    source_level: int | None  # None: the 2×2 mean of the output level above


def convert_to_omezarr(
    slide_or_path: Slide | str | Path,
    out: str | Path,
    compression: str = DEFAULT_COMPRESSION,
    chunk: int = DEFAULT_CHUNK,
) -> Job[Path]:
    """Write ``slide_or_path`` as an OME-Zarr pyramid at ``out``; resumes an unfinished one.

    Parameters
    ----------
    slide_or_path : Slide or path
        An open slide, or a path for :func:`~slidescope.app.slides.open_slide`.
    out : path
        The ``.zarr`` directory to write. An unfinished conversion of the same slide
        with the same settings there is finished; a finished one is left as it is.
    compression : {"zstd", "lz4", "jpeg", "none"}
        ``zstd`` (default): lossless Blosc-Zstd, which every NGFF reader decodes.
        ``lz4``: lossless, faster, larger. ``jpeg``: lossy (quality 90), a fraction of
        the size, but readers must have imagecodecs' numcodecs codecs registered
        (``imagecodecs.numcodecs.register_codecs()``); napari-ome-zarr alone cannot.
    chunk : int
        Chunk width and height in pixels.

    Yields
    ------
    Progress
        Chunks done (written or found on disk) out of all chunks of all levels.

    Returns
    -------
    Path
        ``out``.
    """
    from slidescope.app.slides import open_slide

    out = Path(out)
    if compression not in COMPRESSIONS:
        raise ConversionError(
            out, f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}"
        )
    if not 64 <= chunk <= 8192:
        raise ConversionError(out, f"chunk must be between 64 and 8192 px, got {chunk}")
    owned = not isinstance(slide_or_path, Slide)
    slide = open_slide(slide_or_path) if owned else slide_or_path
    assert isinstance(slide, Slide)
    try:
        yield from _convert(slide, out, compression, chunk)
    finally:
        if owned:
            slide.close()
    return out


def _convert(slide: Slide, out: Path, compression: str, chunk: int) -> Job[None]:
    levels = _plan(slide, chunk)
    identity = slide.identity.to_dict()
    settings = {"compression": compression, "chunk": chunk, "ngff_version": NGFF_VERSION}
    group = _open_or_create(out, identity, settings)
    if group.attrs.get("slidescope", {}).get("complete"):
        yield Progress(1, 1, "already converted")
        return
    channel_chunk = 1 if compression == "jpeg" else 3
    for index, level in enumerate(levels):
        if str(index) not in group:
            group.create_array(
                str(index),
                shape=(3, level.height, level.width),
                chunks=(channel_chunk, chunk, chunk),
                dtype="uint8",
                compressors=_codec(compression),
                fill_value=255,
                chunk_key_encoding={"name": "v2", "separator": "/"},
            )
    writer = _ChunkWriter(slide, out, levels, _codec(compression), chunk, channel_chunk)
    per_chunk = 3 // channel_chunk
    total = sum(per_chunk * _ceil(lv.height, chunk) * _ceil(lv.width, chunk) for lv in levels)
    done = 0
    # Decoding, reordering, encoding and writing a chunk release the GIL (imagecodecs,
    # Blosc, file I/O), so a few threads share the work; at most ``2 * threads`` chunks
    # are in flight, which bounds memory. Shut down in ``finally``: a cancelled job
    # (``close()``) lets the running chunks finish whole and drops the queued ones.
    threads = _threads()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="slidescope-convert")
    try:
        for index, level in enumerate(levels):
            folder = out / str(index)
            _remove_partials(folder)
            in_flight: deque[tuple[Future[int], str]] = deque()
            for row in range(_ceil(level.height, chunk)):
                missing = _missing_chunks(folder, row, _ceil(level.width, chunk), per_chunk)
                done += per_chunk * _ceil(level.width, chunk) - sum(
                    len(c) for c in missing.values()
                )
                what = f"level {index}, row {row + 1}"
                for col, channels in missing.items():
                    in_flight.append((pool.submit(writer.write, index, row, col, channels), what))
                    while len(in_flight) >= 2 * threads:
                        future, about = in_flight.popleft()
                        done += future.result()
                        yield Progress(done, total, about)
            # a computed level reads the level above from disk: it must be whole first
            while in_flight:
                future, about = in_flight.popleft()
                done += future.result()
                yield Progress(done, total, about)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    name = slide_id_of(slide.path)
    attrs = dict(group.attrs.asdict())
    attrs["multiscales"] = [multiscales(name, [(lv.width, lv.height) for lv in levels], slide.mpp)]
    attrs["omero"] = omero(name)
    attrs["slidescope"] = {**attrs["slidescope"], "complete": True}
    # written last, atomically: from here on, readers see a finished pyramid
    _write_attributes(out, attrs)


def _threads() -> int:
    """Worker threads: 2 to 4, as the machine has cores."""
    return max(2, min(4, os.cpu_count() or 1))


def _missing_chunks(folder: Path, row: int, cols: int, per_chunk: int) -> dict[int, list[int]]:
    """Channel chunks of chunk-row ``row`` not on disk yet: ``{column: [channel chunk, ...]}``.

    One directory listing per channel chunk and row, not one ``stat`` per chunk.
    """
    present = []
    for c in range(per_chunk):
        row_folder = folder / str(c) / str(row)
        row_folder.mkdir(parents=True, exist_ok=True)
        present.append({n for n in os.listdir(row_folder) if not n.startswith(".")})
    missing: dict[int, list[int]] = {}
    for col in range(cols):
        channels = [c for c in range(per_chunk) if str(col) not in present[c]]
        if channels:
            missing[col] = channels
    return missing


def _plan(slide: Slide, chunk: int) -> list[_Level]:
    """2× levels down to one chunk; each taken from the source when it has that level."""
    w, h = slide.dimensions
    downsamples = slide.downsamples
    sizes = slide.level_dimensions
    levels = [_Level(w, h, 0)]
    factor = 1
    while max(levels[-1].width, levels[-1].height) > chunk:
        factor *= 2
        match = next(
            (i for i, d in enumerate(downsamples) if abs(d - factor) / factor < 0.02), None
        )
        if match is not None:
            levels.append(_Level(sizes[match][0], sizes[match][1], match))
        else:
            above = levels[-1]
            levels.append(_Level(max(1, above.width // 2), max(1, above.height // 2), None))
    return levels


class _ChunkWriter:
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
        levels: list[_Level],
        codec: Any,
        chunk: int,
        channel_chunk: int,
    ) -> None:
        self.slide = slide
        self.out = out
        self.levels = levels
        self.codec = codec
        self.chunk = chunk
        self.channel_chunk = channel_chunk
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
                planes = _halve(above[:, : 2 * (y1 - y0), : 2 * (x1 - x0)])
        folder = self.out / str(index)
        for c in channels:
            part = planes[c * self.channel_chunk : (c + 1) * self.channel_chunk]
            _write_atomically(folder / f"{c}/{row}/{col}", self._encode(part))
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
                    ] = self._decode(path.read_bytes())
        return block

    def _decode(self, data: bytes) -> np.ndarray:
        """A chunk file's bytes as ``(channel_chunk, chunk, chunk)`` uint8."""
        shape = (self.channel_chunk, self.chunk, self.chunk)
        if self.codec is None:
            return np.frombuffer(data, np.uint8).reshape(shape)
        return np.frombuffer(bytes(self.codec.decode(data)), np.uint8).reshape(shape)

    def _encode(self, part: np.ndarray) -> bytes:
        """The bytes of the chunk holding ``part`` (``(c, y, x)``) as the compressor stores them.

        A whole chunk of one colour (glass) is encoded once and its bytes reused; it is
        checked before the costly copy into a contiguous block.
        """
        chunk = self.chunk
        whole = part.shape[1:] == (chunk, chunk)
        colour = part[:, 0, 0]
        key = part.shape[0].to_bytes(1, "little") + colour.tobytes()
        uniform = whole and _is_uniform(part.transpose(1, 2, 0), colour)
        if uniform and key in self.uniform_chunks:
            return self.uniform_chunks[key]
        if whole:
            block = np.ascontiguousarray(part)
        else:  # an edge chunk: zarr chunks are whole, padded with the fill value
            block = np.full((part.shape[0], chunk, chunk), 255, np.uint8)
            block[:, : part.shape[1], : part.shape[2]] = part
        if self.codec is None:
            encoded = block.tobytes()
        elif _is_jpeg(self.codec):
            encoded = bytes(self.codec.encode(block[0]))  # one grey JPEG per channel chunk
        else:
            encoded = bytes(self.codec.encode(block))
        if uniform:
            self.uniform_chunks[key] = encoded
            if part.shape[0] == 3:
                self.uniform_colours[encoded] = colour.tobytes()
        return encoded


def _halve(block: np.ndarray) -> np.ndarray:
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


def _is_uniform(pixels: np.ndarray, colour: np.ndarray) -> bool:
    """Whether every pixel of ``(y, x, c)`` is ``colour``.

    The first row is compared as bytes (tissue fails there at once); then the rows, as
    contiguous runs of bytes, are compared with it in one vectorised pass.
    """
    expected = np.tile(colour, pixels.shape[1])
    if pixels[0].tobytes() != expected.tobytes():
        return False
    rows = pixels.reshape(pixels.shape[0], -1)
    return bool((rows == expected).all())


def _write_attributes(out: Path, attrs: dict[str, Any]) -> None:
    """Replace the group's ``.zattrs`` (NGFF 0.4 / zarr format 2) in one rename."""
    _write_atomically(out / ".zattrs", json.dumps(attrs, indent=2).encode())


def _write_atomically(path: Path, data: bytes) -> None:
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


def _remove_partials(folder: Path) -> None:
    """Delete the temporary chunk files a killed run left behind."""
    if folder.is_dir():
        for leftover in folder.rglob(".*.partial"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _open_or_create(out: Path, identity: dict[str, Any], settings: dict[str, Any]) -> Any:
    import zarr

    if out.exists():
        try:
            group = zarr.open_group(out, mode="r+")
            ours = dict(group.attrs.get("slidescope") or {})
        except Exception as error:  # zarr raises many kinds for foreign or broken stores
            raise ConversionError(
                out,
                f"exists and is not a readable zarr group ({error}); remove it or "
                "choose another output",
            ) from error
        if not ours:
            raise ConversionError(
                out,
                "exists and was not written by slidescope convert; remove it or choose "
                "another output",
            )
        if ours.get("source", {}).get("fingerprint") != identity["fingerprint"]:
            raise ConversionError(
                out,
                "holds the conversion of a different slide; remove it or choose another output",
            )
        for key, value in settings.items():
            if ours.get(key) != value:
                raise ConversionError(
                    out,
                    f"was started with {key}={ours.get(key)!r}, not {value!r}; run again "
                    f"with the same {key}, or remove it to start over",
                )
        return group
    if not out.parent.is_dir():
        raise ConversionError(out, f"the folder {out.parent} does not exist")
    zarr.open_group(out, mode="w", zarr_format=2)
    _write_attributes(
        out,
        {
            "slidescope": {
                "complete": False,
                # "source" is the slide this pyramid converts; OmeZarrSlide reads the same
                # dictionary as "identity" so results place on both
                "source": identity,
                "identity": identity,
                "mpp": list(identity["mpp"]) if identity["mpp"] else None,
                **settings,
            }
        },
    )
    return zarr.open_group(out, mode="r+")


def _codec(compression: str) -> Any:
    import numcodecs

    if compression == "zstd":
        # level 1: on H&E within 2 % of level 5's size at a third of its time. One block
        # per chunk (a 512² RGB chunk is 768 KiB): Blosc's default small blocks cost 45 %
        # more time for the same size. Shuffling bytes of uint8 does nothing, so none.
        return numcodecs.Blosc(
            cname="zstd", clevel=1, shuffle=numcodecs.Blosc.NOSHUFFLE, blocksize=ZSTD_BLOCK
        )
    if compression == "lz4":
        return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    if compression == "jpeg":
        from imagecodecs.numcodecs import Jpeg

        # readers need it registered too (numcodecs finds no entry point for it)
        numcodecs.register_codec(Jpeg)
        return Jpeg(level=JPEG_QUALITY)
    return None


def _is_jpeg(codec: Any) -> bool:
    return getattr(codec, "codec_id", "") == "imagecodecs_jpeg"


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
