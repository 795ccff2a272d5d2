"""A streaming writer of pyramidal, tiled, JPEG-compressed BigTIFF files.

tifffile writes one page after another, but a pyramid built in bounded memory finishes
tiles of every level in turn (two rows of level 0 make one row of level 1, ...). This
writer therefore appends each encoded tile wherever the file stands and writes every
page's directory (IFD) at the end, which TIFF allows: a directory only points at its
tiles. The layout is what OpenSlide's ``generic-tiff`` format and tifffile expect of a
pyramid: one page per level, level 0 first, the reduced levels marked with
``NewSubfileType = 1``, the resolution tags giving the microns per pixel.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

# TIFF field types
_SHORT, _LONG, _RATIONAL, _LONG8, _ASCII = 3, 4, 5, 16, 2
_TYPE_SIZE = {_SHORT: 2, _LONG: 4, _RATIONAL: 8, _LONG8: 8, _ASCII: 1}
_TYPE_CODE = {_SHORT: "H", _LONG: "I", _LONG8: "Q"}

COMPRESSION_JPEG = 7
PHOTOMETRIC_YCBCR = 6


@dataclass
class TiffLevel:
    """One page of the pyramid: its size and where each of its tiles lies in the file.

    Attributes
    ----------
    width, height : int
        The level's size in pixels.
    tile : int
        Tile width and height in pixels.
    microns_per_pixel : float
        The level's resolution, written as TIFF resolution tags (pixels per cm).
    reduced : bool
        True for every level but the first (``NewSubfileType = 1``).
    """

    width: int
    height: int
    tile: int
    microns_per_pixel: float
    reduced: bool
    offsets: list[int] = field(default_factory=list)
    byte_counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.tiles_across * self.tiles_down
        self.offsets = [0] * n
        self.byte_counts = [0] * n

    @property
    def tiles_across(self) -> int:
        return -(-self.width // self.tile)

    @property
    def tiles_down(self) -> int:
        return -(-self.height // self.tile)


class PyramidTiffWriter:
    """Write JPEG tiles of a pyramid in any order, then the directories on :meth:`finish`.

    Parameters
    ----------
    fh : binary file
        Opened for writing, positioned at 0.
    levels : list of TiffLevel
        The pages, level 0 first.
    description : str
        ImageDescription of the first page.
    """

    def __init__(self, fh: BinaryIO, levels: list[TiffLevel], description: str = "") -> None:
        self._fh = fh
        self.levels = levels
        self._description = description
        # BigTIFF header; the first directory's offset is patched in finish()
        fh.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))
        self._position = 16

    def write_tile(self, level: int, tx: int, ty: int, encoded: bytes) -> None:
        """Append one encoded JPEG tile of ``level`` at tile column ``tx``, row ``ty``."""
        page = self.levels[level]
        index = ty * page.tiles_across + tx
        page.offsets[index] = self._position
        page.byte_counts[index] = len(encoded)
        self._fh.write(encoded)
        self._position += len(encoded)

    def finish(self) -> None:
        """Write every page's directory and link them; the file is complete afterwards."""
        missing = [
            i for i, page in enumerate(self.levels) if any(c == 0 for c in page.byte_counts)
        ]
        if missing:
            raise ValueError(f"tiles missing in levels {missing}")
        if self._position % 2:  # directories start on a word boundary
            self._fh.write(b"\0")
            self._position += 1
        directory_offsets: list[int] = []
        blobs: list[bytes] = []
        position = self._position
        for i, page in enumerate(self.levels):
            blob = _directory(page, position, self._description if i == 0 else "")
            directory_offsets.append(position)
            blobs.append(blob)
            position += len(blob)
        for i, blob in enumerate(blobs):
            next_offset = directory_offsets[i + 1] if i + 1 < len(blobs) else 0
            # the next-directory pointer is the 8 bytes that close each directory block
            cut = _entries_length(blob)
            self._fh.write(blob[:cut] + struct.pack("<Q", next_offset) + blob[cut + 8 :])
        self._fh.seek(8)
        self._fh.write(struct.pack("<Q", directory_offsets[0]))
        self._fh.flush()


def _entries_length(blob: bytes) -> int:
    (count,) = struct.unpack_from("<Q", blob, 0)
    return 8 + 20 * int(count)


def _directory(page: TiffLevel, offset: int, description: str) -> bytes:
    """One BigTIFF directory followed by the values that do not fit in its entries."""
    pixels_per_cm = 1e4 / page.microns_per_pixel
    numerator, denominator = _rational(pixels_per_cm)
    entries: list[tuple[int, int, list[int] | bytes]] = [
        (254, _LONG, [1 if page.reduced else 0]),
        (256, _LONG, [page.width]),
        (257, _LONG, [page.height]),
        (258, _SHORT, [8, 8, 8]),
        (259, _SHORT, [COMPRESSION_JPEG]),
        (262, _SHORT, [PHOTOMETRIC_YCBCR]),
    ]
    if description:
        entries.append((270, _ASCII, description.encode("ascii", "replace") + b"\0"))
    entries += [
        (277, _SHORT, [3]),
        (282, _RATIONAL, [numerator, denominator]),
        (283, _RATIONAL, [numerator, denominator]),
        (284, _SHORT, [1]),
        (296, _SHORT, [3]),  # centimetre
        (305, _ASCII, b"SlideScope demo-slide\0"),
        (322, _LONG, [page.tile]),
        (323, _LONG, [page.tile]),
        (324, _LONG8, page.offsets),
        (325, _LONG8, page.byte_counts),
        (530, _SHORT, [2, 2]),  # YCbCr 4:2:0, as the JPEG tiles are encoded
        (532, _RATIONAL, [0, 1, 255, 1, 128, 1, 255, 1, 128, 1, 255, 1]),
    ]
    head = struct.pack("<Q", len(entries))
    extra_start = offset + 8 + 20 * len(entries) + 8
    body = b""
    extra = b""
    for tag, kind, values in entries:
        data = _pack(kind, values)
        count = len(values) if kind != _RATIONAL else len(values) // 2
        if len(data) <= 8:
            body += struct.pack("<HHQ", tag, kind, count) + data.ljust(8, b"\0")
        else:
            body += struct.pack("<HHQQ", tag, kind, count, extra_start + len(extra))
            extra += data
            if len(extra) % 2:
                extra += b"\0"
    return head + body + struct.pack("<Q", 0) + extra


def _pack(kind: int, values: list[int] | bytes) -> bytes:
    if isinstance(values, bytes):
        return values
    if kind == _RATIONAL:
        return struct.pack(f"<{len(values)}I", *values)
    return struct.pack(f"<{len(values)}{_TYPE_CODE[kind]}", *values)


def _rational(value: float) -> tuple[int, int]:
    """``value`` as a TIFF RATIONAL with enough precision for an mpp like 0.2527."""
    denominator = 1000
    return round(value * denominator), denominator
