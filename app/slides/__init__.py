"""Whole-slide images as multiscale pyramids: ``open_slide(path) -> Slide``.

TIFF-family slides are served from their own tiles (tifffile + zarr), OME-Zarr natively,
everything else through OpenSlide. See DESIGN.md, "Slides".
"""

from __future__ import annotations

from slidescope.app.slides.errors import (
    CorruptSlideError,
    DecoderCrashedError,
    IncompleteConversionError,
    SlideError,
    SlideNotFoundError,
    SlideTooLargeError,
    UnsupportedCompressionError,
    UnsupportedSlideError,
)
from slidescope.app.slides.open import open_slide
from slidescope.app.slides.slide import Slide, SlideIdentity, slide_id_of

__all__ = [
    "CorruptSlideError",
    "DecoderCrashedError",
    "IncompleteConversionError",
    "Slide",
    "SlideError",
    "SlideIdentity",
    "SlideNotFoundError",
    "SlideTooLargeError",
    "UnsupportedCompressionError",
    "UnsupportedSlideError",
    "open_slide",
    "slide_id_of",
]
