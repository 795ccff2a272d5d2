"""The ``SlideError`` family: every way a slide file can fail, naming the file and why."""

from __future__ import annotations

from pathlib import Path

from slidescope.app.errors import SlideScopeError


class SlideError(SlideScopeError):
    """A slide cannot be opened or read.

    The message always starts with the file's path, then says what is wrong.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SlideNotFoundError(SlideError, FileNotFoundError):
    """The path does not exist."""


class UnsupportedSlideError(SlideError):
    """The file exists but is not a slide any backend can read."""


class CorruptSlideError(SlideError):
    """The file is a slide, but part of it is damaged (truncated, an empty tile, ...)."""


class UnsupportedCompressionError(SlideError):
    """A tile is compressed with a codec nobody here can decode."""


class IncompleteConversionError(CorruptSlideError):
    """An OME-Zarr pyramid whose conversion was stopped before it was finished."""


class SlideTooLargeError(SlideError):
    """The file claims sizes no real slide has, or reading it needs more memory than allowed."""


class DecoderCrashedError(CorruptSlideError):
    """A native decoder crashed, hung or ran out of memory on the file (seen in a sandbox)."""
