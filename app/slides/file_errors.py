"""The read boundary: whatever a damaged file makes a decoder raise becomes a ``SlideError``.

Decoders raise anything on damaged bytes: tifffile's ``TiffFileError`` (and ``ValueError``,
``ZeroDivisionError``, ``IndexError`` from its arithmetic on absurd tags), imagecodecs'
``Jpeg8Error``/``DeflateError`` (``RuntimeError``), zarr's ``BaseZarrError``, OpenSlide's
``OpenSlideError``, ``MemoryError`` on a size nobody checked. :func:`reading` is put where a
file's bytes are turned into pixels or structure (opening a backend, a level array's
``__getitem__``, ``thumbnail``, ``read_region``) and nowhere else, so a bug in our own code
further up is not disguised as a damaged file.

Third-party log lines about a damaged file (tifffile logs "invalid page offset" and the like
on the root logger's last-resort handler, i.e. the terminal) are kept out of the terminal:
:func:`file_log` collects them into the slide's own record (``Slide.problems``) and passes
them on to the ``slidescope.slides`` logger at DEBUG level.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from slidescope.app.slides.errors import CorruptSlideError, SlideError, SlideTooLargeError

# What decoders raise on damaged bytes. RuntimeError covers imagecodecs' codec errors and
# NotImplementedError (tifffile on impossible tag combinations); ValueError covers
# TiffFileError and zarr's errors; LookupError covers IndexError and KeyError.
FILE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    LookupError,
    ArithmeticError,
    RuntimeError,
    OSError,
    EOFError,
    struct.error,
)
_THIRD_PARTY_LOGGERS = ("tifffile", "imagecodecs", "zarr", "numcodecs", "openslide")
_records: ContextVar[list[str] | None] = ContextVar("slide_file_log", default=None)
_log = logging.getLogger("slidescope.slides")


def _extra_errors() -> tuple[type[BaseException], ...]:
    try:
        import openslide
    except ImportError:  # pragma: no cover - openslide-python is a dependency
        return ()
    return (openslide.OpenSlideError,)


@contextlib.contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Turn a decoder's failure while doing ``what`` with ``path`` into a ``SlideError``.

    Parameters
    ----------
    path : str or Path
        The slide file, named in the message.
    what : str
        What was being read, e.g. ``"level 2"``, ``"the thumbnail"``.
    """
    try:
        yield
    except SlideError:
        raise
    except MemoryError as error:
        raise SlideTooLargeError(
            path,
            f"reading {what} needs more memory than there is; the file claims sizes "
            "no real slide has, or the machine is short of memory",
        ) from error
    except FILE_ERRORS + _extra_errors() as error:
        raise CorruptSlideError(
            path, f"{what} cannot be read, the file is damaged ({_describe(error)})"
        ) from error


def _describe(error: BaseException) -> str:
    text = str(error).strip() or "no detail"
    return f"{type(error).__name__}: {text[:200]}"


class _Collect(logging.Handler):
    """Keeps third-party records out of the terminal: into the open slide's record, or DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = f"{record.name}: {record.getMessage()}"
        except Exception:  # a record whose arguments do not format is still no crash
            message = f"{record.name}: {record.msg!r}"
        found = _records.get()
        if found is not None and len(found) < 100:
            found.append(message)
        _log.debug(message)


_handler = _Collect()


def quiet_third_party_logs() -> None:
    """Route tifffile's, imagecodecs', zarr's and openslide's log records to our records."""
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if _handler not in logger.handlers:
            logger.addHandler(_handler)
        logger.propagate = False


@contextlib.contextmanager
def file_log(into: list[str]) -> Iterator[None]:
    """Collect third-party log lines emitted in this block (this thread) into ``into``."""
    token = _records.set(into)
    try:
        yield
    finally:
        _records.reset(token)


quiet_third_party_logs()
