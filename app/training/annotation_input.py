"""A slide's region annotations, read through the annotation core, checked against the slide.

Annotations drawn on another slide are refused rather than learnt from: when the file names
a slide (its identity, as the annotation store writes it) that is not this one, or when
its regions reach far beyond this slide's level-0 size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slidescope.app.analysis.results_cache import file_sha256
from slidescope.app.annotations.annotation_io import read_annotations
from slidescope.app.errors import SlideScopeError
from slidescope.app.slides.slide import SlideIdentity
from slidescope.app.training.patch_labels import Region

#: regions may overhang the slide by this share of its size (a stroke past the edge)
OVERHANG = 0.02


class AnnotationMismatchError(SlideScopeError):
    """The annotations belong to another slide."""


def load_regions(path: Path, identity: SlideIdentity) -> tuple[list[Region], str]:
    """The regions of ``path`` for the slide ``identity``, and the file's SHA-256.

    Raises
    ------
    AnnotationMismatchError
        When the file says it belongs to another slide, or its regions lie beyond the slide.
    """
    annotations, _report = read_annotations(path, slide_dimensions=None)
    owner = _owner(annotations)
    if owner is not None:
        slide_id, fingerprint = owner
        if (fingerprint and fingerprint != identity.fingerprint) or (
            not fingerprint and slide_id and slide_id != identity.slide_id
        ):
            raise AnnotationMismatchError(
                f"{path}: annotations of slide {slide_id!r} ({fingerprint or 'no fingerprint'}), "
                f"not of {identity.slide_id!r} ({identity.fingerprint}); give the annotation "
                "file of this slide"
            )
    regions: list[Region] = [a for a in annotations if getattr(a, "geometry", None) is not None]
    if regions and identity.width > 0 and identity.height > 0:
        x0 = min(r.geometry.bounds[0] for r in regions)
        y0 = min(r.geometry.bounds[1] for r in regions)
        x1 = max(r.geometry.bounds[2] for r in regions)
        y1 = max(r.geometry.bounds[3] for r in regions)
        dx, dy = OVERHANG * identity.width, OVERHANG * identity.height
        if x0 < -dx or y0 < -dy or x1 > identity.width + dx or y1 > identity.height + dy:
            raise AnnotationMismatchError(
                f"{path}: regions reach ({x1:.0f}, {y1:.0f}) px, beyond the slide "
                f"{identity.slide_id!r} ({identity.width} x {identity.height} px): they were "
                "drawn on another slide"
            )
    return regions, file_sha256(path)


def _owner(annotations: Any) -> tuple[str | None, str | None] | None:
    """(slide_id, fingerprint) the annotation set says it belongs to, if it says."""
    identity = getattr(annotations, "slide_identity", None) or getattr(
        annotations, "identity", None
    )
    if identity is None:
        return None
    if isinstance(identity, dict):
        return identity.get("slide_id"), identity.get("fingerprint")
    return getattr(identity, "slide_id", None), getattr(identity, "fingerprint", None)
