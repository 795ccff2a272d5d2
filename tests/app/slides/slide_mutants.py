"""Damaged copies of good slides, and a sandbox that reads them, for the fuzz tests.

Mutation strategies (the ones a hostile file or a bad disk produces): byte flips in the
header, in IFD entries and in tile data; truncation; a tile's byte count zeroed; absurd
claimed image sizes; absurd tile sizes; tile offsets zeroed or pointed far past the end.
Each mutant is a file; :func:`read_in_sandbox` reads them one after another in a child
process under a memory cap and a timeout, and starts a fresh child after a crash or a hang,
so one mutant's fate never hides another's.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

STRATEGIES = (
    "header-flip",
    "ifd-flip",
    "tile-flip",
    "truncate",
    "zero-tile-size",
    "absurd-image-size",
    "absurd-tile-size",
    "tile-offset",
)
CHILD = Path(__file__).with_name("fuzz_child.py")
# What the sandbox reports, in the order of the table.
OUTCOMES = ("crash", "hang", "memory", "raw-exception", "slide-error", "opened")


@dataclass(frozen=True)
class _Tag:
    offset: int  # where the value (or its first item) is stored
    count: int
    fmt: str  # struct format of one item, with the byte order


@dataclass(frozen=True)
class _Layout:
    """Where the interesting bytes of a TIFF are: IFD entries, size tags, tile tables."""

    entries: list[tuple[int, int]]  # (offset, length) of every IFD entry
    tags: dict[str, list[_Tag]]  # tag name -> one per page that has it
    tiles: list[tuple[int, int]]  # (offset, byte count) of tiles


def _layout(path: Path) -> _Layout:
    entries: list[tuple[int, int]] = []
    tags: dict[str, list[_Tag]] = {}
    tiles: list[tuple[int, int]] = []
    with tifffile.TiffFile(path) as tif:
        order = tif.byteorder
        entry_size = 20 if tif.is_bigtiff else 12
        pages = list(tif.pages)
        for page in pages:
            for tag in page.tags.values():
                entries.append((tag.offset, entry_size))
                if tag.name in _SIZE_TAGS:
                    fmt = order + tifffile.TIFF.DATA_FORMATS[tag.dtype][-1]
                    tags.setdefault(tag.name, []).append(_Tag(tag.valueoffset, tag.count, fmt))
            tiles += [(int(o), int(c)) for o, c in zip(page.dataoffsets, page.databytecounts)]
    return _Layout(entries, tags, [t for t in tiles if t[1] > 0])


_SIZE_TAGS = (
    "ImageWidth",
    "ImageLength",
    "TileWidth",
    "TileLength",
    "TileOffsets",
    "TileByteCounts",
)
_ABSURD = (0, 1, 65_535, 1_000_000, 2**24, 2**31 - 1, 2**32 - 1)


def _set_item(data: bytearray, tag: _Tag, index: int, value: int) -> None:
    size = struct.calcsize(tag.fmt)
    value = min(value, 2 ** (8 * size) - 1)
    struct.pack_into(tag.fmt, data, tag.offset + index * size, value)


def mutate(source: bytes, layout: _Layout, strategy: str, rng: np.random.Generator) -> bytes:
    """One damaged copy of ``source`` by ``strategy`` (one of :data:`STRATEGIES`)."""
    data = bytearray(source)

    def flip(start: int, length: int, flips: int) -> None:
        for _ in range(flips):
            at = start + int(rng.integers(0, max(length, 1)))
            if at < len(data):
                data[at] ^= 1 << int(rng.integers(0, 8))

    def pick(name: str) -> _Tag | None:
        found = layout.tags.get(name) or []
        return found[int(rng.integers(0, len(found)))] if found else None

    if strategy == "header-flip":
        flip(0, 16, int(rng.integers(1, 4)))
    elif strategy == "ifd-flip":
        for _ in range(int(rng.integers(1, 5))):
            offset, length = layout.entries[int(rng.integers(0, len(layout.entries)))]
            flip(offset, length, 1)
    elif strategy == "tile-flip":
        for _ in range(int(rng.integers(1, 4))):
            offset, count = layout.tiles[int(rng.integers(0, len(layout.tiles)))]
            flip(offset, count, int(rng.integers(1, 16)))
    elif strategy == "truncate":
        return bytes(data[: int(rng.integers(8, len(data)))])
    elif strategy == "zero-tile-size":
        tag = pick("TileByteCounts")
        if tag is not None:
            for _ in range(int(rng.integers(1, 4))):
                _set_item(data, tag, int(rng.integers(0, tag.count)), 0)
    elif strategy in ("absurd-image-size", "absurd-tile-size"):
        names = ("ImageWidth", "ImageLength")
        if strategy == "absurd-tile-size":
            names = ("TileWidth", "TileLength")
        tag = pick(names[int(rng.integers(0, 2))])
        if tag is not None:
            _set_item(data, tag, 0, int(rng.choice(_ABSURD)))
    elif strategy == "tile-offset":
        tag = pick("TileOffsets")
        if tag is not None:
            for _ in range(int(rng.integers(1, 3))):
                value = int(rng.choice([0, 8, len(data) - 1, 2**31, 2**32 - 1]))
                _set_item(data, tag, int(rng.integers(0, tag.count)), value)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return bytes(data)


def write_mutants(sources: dict[str, Path], count: int, seed: int, folder: Path) -> list[Path]:
    """``count`` mutants of ``sources``, spread evenly over sources and strategies."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    prepared = [(name, path.read_bytes(), _layout(path)) for name, path in sources.items()]
    paths = []
    for i in range(count):
        name, source, layout = prepared[i % len(prepared)]
        strategy = STRATEGIES[(i // len(prepared)) % len(STRATEGIES)]
        suffix = ".svs" if source[:4] in (b"II*\x00", b"II+\x00") and "svs" in name else ".tiff"
        path = folder / f"{i:04d}-{name}-{strategy}{suffix}"
        path.write_bytes(mutate(source, layout, strategy, rng))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class Outcome:
    """What reading one mutant did."""

    path: Path
    kind: str  # one of OUTCOMES
    detail: str
    stderr: str = ""


def read_in_sandbox(
    paths: list[Path],
    reader: str = "slidescope",
    timeout_s: float = 30.0,
    memory_bytes: int = 2 << 30,
) -> list[Outcome]:
    """Open and read every path in a child process under a memory cap and a timeout.

    ``reader`` is ``slidescope`` (``open_slide``, ``thumbnail``, regions, a level slice),
    ``openslide`` (OpenSlide alone: open, ``get_thumbnail``, regions) or ``cli``
    (``slidescope info``). A crash or a hang is charged to the mutant being read, and a
    fresh child goes on with the next.
    """
    outcomes: list[Outcome] = []
    todo = list(paths)
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONFAULTHANDLER": ""}
    while todo:
        errors = Path(os.environ.get("TMPDIR", "/tmp")) / f"fuzz-child-{os.getpid()}.err"
        with errors.open("w+b") as err:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), reader, str(memory_bytes)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            )
            assert child.stdin is not None
            assert child.stdout is not None
            try:
                while todo:
                    path = todo[0]
                    child.stdin.write(f"{path}\n".encode())
                    child.stdin.flush()
                    line = _read_line(child.stdout, timeout_s)
                    if line is None:  # hung
                        child.kill()
                        child.wait()
                        outcomes.append(Outcome(path, "hang", f"no answer in {timeout_s:.0f} s"))
                        todo.pop(0)
                        break
                    if not line:  # the child died
                        code = child.wait()
                        err.seek(0)
                        text = err.read().decode("utf-8", "replace")
                        kind = "memory" if "failed to allocate" in text else "crash"
                        detail = f"signal {-code}" if code < 0 else f"exit {code}"
                        outcomes.append(Outcome(path, kind, detail, text[-400:]))
                        todo.pop(0)
                        break
                    result = json.loads(line)
                    outcomes.append(
                        Outcome(path, result["kind"], result["detail"], result.get("stderr", ""))
                    )
                    todo.pop(0)
            finally:
                if child.poll() is None:
                    child.stdin.close()
                    try:
                        child.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
        errors.unlink(missing_ok=True)
    return outcomes


def _read_line(stream: object, timeout_s: float) -> bytes | None:
    """One line from the child, ``b""`` at its end, None if none came in time."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1)
        if not chunk:
            return b""
        line += chunk
    return line


def table(outcomes: dict[str, list[Outcome]]) -> str:
    """A side-by-side count of outcomes per reader, as text."""
    counts = {name: Counter(o.kind for o in found) for name, found in outcomes.items()}
    names = list(outcomes)
    rows = [f"{'outcome':<15}" + "".join(f"{n:>12}" for n in names)]
    for kind in OUTCOMES:
        rows.append(f"{kind:<15}" + "".join(f"{counts[n][kind]:>12}" for n in names))
    rows.append(f"{'mutants':<15}" + "".join(f"{len(outcomes[n]):>12}" for n in names))
    return "\n".join(rows)
