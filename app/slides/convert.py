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
    arrays = []
    for index, level in enumerate(levels):
        name = str(index)
        if name in group:
            arrays.append(group[name])
            continue
        arrays.append(
            group.create_array(
                name,
                shape=(3, level.height, level.width),
                chunks=(channel_chunk, chunk, chunk),
                dtype="uint8",
                compressors=_codec(compression),
                fill_value=255,
                chunk_key_encoding={"name": "v2", "separator": "/"},
            )
        )
    codec = _codec(compression)
    counts = [
        3 // channel_chunk * _ceil(lv.height, chunk) * _ceil(lv.width, chunk) for lv in levels
    ]
    total, done = sum(counts), 0
    # glass is one colour: its chunks are encoded once per colour and their bytes reused
    uniform_chunks: dict[bytes, bytes] = {}
    for index, level in enumerate(levels):
        folder = out / str(index)
        _remove_partials(folder)
        for row in range(_ceil(level.height, chunk)):
            missing = [
                (c, col)
                for col in range(_ceil(level.width, chunk))
                for c in range(0, 3, channel_chunk)
                if not (folder / f"{c // channel_chunk}/{row}/{col}").exists()
            ]
            done += counts[index] // _ceil(level.height, chunk) - len(missing)
            if not missing:
                continue
            first = min(col for _, col in missing) * chunk
            last = min(level.width, (max(col for _, col in missing) + 1) * chunk)
            y0, y1 = row * chunk, min(level.height, (row + 1) * chunk)
            strip = _read_strip(slide, levels, arrays, index, y0, y1, first, last)
            for c in range(0, 3, channel_chunk):
                (folder / f"{c // channel_chunk}/{row}").mkdir(parents=True, exist_ok=True)
            for c, col in missing:
                x0 = col * chunk - first
                part = strip[:, x0 : x0 + chunk, c : c + channel_chunk].transpose(2, 0, 1)
                encoded = _encode(codec, part, chunk, uniform_chunks)
                _write_atomically(folder / f"{c // channel_chunk}/{row}/{col}", encoded)
                done += 1
                yield Progress(done, total, f"level {index}, row {row + 1}")
    name = slide_id_of(slide.path)
    attrs = dict(group.attrs.asdict())
    attrs["multiscales"] = [multiscales(name, [(lv.width, lv.height) for lv in levels], slide.mpp)]
    attrs["omero"] = omero(name)
    attrs["slidescope"] = {**attrs["slidescope"], "complete": True}
    # written last, atomically: from here on, readers see a finished pyramid
    _write_attributes(out, attrs)


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


def _read_strip(
    slide: Slide,
    levels: list[_Level],
    arrays: list[Any],
    index: int,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
) -> np.ndarray:
    """Rows ``y0:y1``, columns ``x0:x1`` of output level ``index``, as ``(y, x, 3)`` uint8."""
    level = levels[index]
    if level.source_level is not None:
        return np.asarray(slide.levels[level.source_level][y0:y1, x0:x1])[..., :3]
    above = np.asarray(arrays[index - 1][:, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1])
    return _halve(above).transpose(1, 2, 0)


def _halve(block: np.ndarray) -> np.ndarray:
    """2×2 mean of a ``(c, 2h, 2w)`` block, rounded to nearest."""
    _c, h, w = block.shape
    b = block[:, : h // 2 * 2, : w // 2 * 2].astype(np.uint16)
    summed = b[:, 0::2, 0::2] + b[:, 1::2, 0::2] + b[:, 0::2, 1::2] + b[:, 1::2, 1::2]
    return ((summed + 2) >> 2).astype(np.uint8)


def _encode(codec: Any, part: np.ndarray, chunk: int, uniform_chunks: dict[bytes, bytes]) -> bytes:
    """The bytes of the chunk holding ``part`` (``(c, y, x)``) as the compressor stores them.

    A whole chunk of one colour (glass) is encoded once and its bytes reused; it is
    checked before the costly copy into a contiguous block.
    """
    whole = part.shape[1:] == (chunk, chunk)
    colour = part[:, 0, 0]
    key = part.shape[0].to_bytes(1, "little") + colour.tobytes()
    uniform = whole and bool((part == colour[:, None, None]).all())
    if uniform and key in uniform_chunks:
        return uniform_chunks[key]
    if whole:
        block = np.ascontiguousarray(part)
    else:  # an edge chunk: zarr chunks are whole, padded with the fill value
        block = np.full((part.shape[0], chunk, chunk), 255, np.uint8)
        block[:, : part.shape[1], : part.shape[2]] = part
    if codec is None:
        encoded = block.tobytes()
    elif _is_jpeg(codec):
        encoded = bytes(codec.encode(block[0]))  # one grey JPEG per channel chunk
    else:
        encoded = bytes(codec.encode(block))
    if uniform:
        uniform_chunks[key] = encoded
    return encoded


def _write_attributes(out: Path, attrs: dict[str, Any]) -> None:
    """Replace the group's ``.zattrs`` (NGFF 0.4 / zarr format 2) in one rename."""
    _write_atomically(out / ".zattrs", json.dumps(attrs, indent=2).encode())


def _write_atomically(path: Path, data: bytes) -> None:
    """Write one chunk file via a temporary sibling: a chunk file that exists is whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
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
        # level 1: on H&E within 2 % of level 5's size at a third of its time
        return numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)
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
