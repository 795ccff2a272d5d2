"""Region annotations become patch labels, and a slide's label may come from them.

The rules, shown to the user as they are written here:

- :data:`PATCH_RULE`: a patch whose area lies mostly (more than half) inside regions of
  class C is an instance of C; a patch mostly inside ``Ignore*`` regions is dropped from
  its bag; with an outside class, a patch mostly outside every region of an annotated
  slide is an instance of that class.
- :data:`LABEL_RULE`: how a slide without a label gets one from its annotations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import shapely
from slidescope.app.annotations.classes import is_ignore
from slidescope.app.errors import SlideScopeError

#: share of a patch's area that makes it belong to a region
MAJORITY = 0.5
PATCH_RULE = (
    "a patch whose area lies mostly (> 50 %) inside regions of class C is an instance of C; "
    "a patch mostly inside Ignore* (or other *-ending) regions is left out of its slide's bag; with "
    "--outside-class NAME, a patch mostly outside every region of an annotated slide is an "
    "instance of NAME"
)
LABEL_RULE = (
    "a slide without a label takes it from its annotations when that is unambiguous: the "
    "one model class (other than the outside class) its regions carry; a slide whose regions "
    "are all of the outside class takes that class; regions of several such classes leave "
    "the slide unlabelled, and it must be labelled by hand"
)
#: said before a fine-tuning run whose slides have no regions (the CLI, the Train dock):
#: on the fine-tune benchmark, 10 slides of a lesion kind the base never saw, slide labels
#: alone took the slide AUC from 0.625 to 0.33, regions to 1.00
LABELS_ONLY_CAUTION = (
    "No regions on these slides: the model learns from slide labels alone, and on a few "
    "slides it can learn a cue they happen to share instead of the lesion. Outline a few "
    "lesions to show it where to look."
)


class AnnotationLabelError(SlideScopeError):
    """Annotations cannot label a slide's patches (unknown class, ambiguous label)."""


class Region(Protocol):
    """What labelling reads of an annotation: its shapely geometry and class name."""

    geometry: Any
    classification: str | None


@dataclass
class PatchLabels:
    """Patch labels of one slide.

    Attributes
    ----------
    labels : ndarray
        (N,) int64 class index per patch, -1 where unlabelled.
    keep : ndarray
        (N,) bool, False for patches dropped by ``Ignore*`` regions.
    counts : dict
        Labelled patches per class name (``"dropped"`` for the Ignore* ones).
    """

    labels: np.ndarray
    keep: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def region_classes(regions: Iterable[Region]) -> list[str]:
    """The class names of the regions (Ignore* and unclassified left out), sorted."""
    return sorted({str(r.classification) for r in regions if r.classification} - {""})


def derive_label(
    regions: Sequence[Region], class_names: Sequence[str], outside_class: str | None
) -> str | None:
    """The slide label its annotations give under :data:`LABEL_RULE`, or None."""
    names = [n for n in region_classes(regions) if not is_ignore(n) and n in class_names]
    evidence = [n for n in names if n != outside_class]
    if len(evidence) == 1:
        return evidence[0]
    if not evidence and outside_class is not None and outside_class in names:
        return outside_class
    return None


def label_patches(
    coords: np.ndarray,
    patch_size: int,
    regions: Sequence[Region],
    class_names: Sequence[str],
    outside_class: str | None = None,
) -> PatchLabels:
    """Label every patch of a slide from its region annotations (:data:`PATCH_RULE`).

    Parameters
    ----------
    coords : ndarray
        (N, 2) level-0 (x, y) of the patches' top-left corners.
    patch_size : int
        Their level-0 side.
    regions : sequence of Region
        The slide's annotations (level-0 px).
    class_names : sequence of str
        The model's classes; regions of other classes (not Ignore*) are an error.
    outside_class : str, optional
        The class of patches outside every region.

    Returns
    -------
    PatchLabels
    """
    n = len(coords)
    labels = np.full(n, -1, np.int64)
    keep = np.ones(n, bool)
    counts: dict[str, int] = {}
    by_class: dict[str, list[Any]] = {}
    for region in regions:
        name = str(region.classification or "")
        if not name or region.geometry is None or region.geometry.is_empty:
            continue
        if not is_ignore(name) and name not in class_names:
            raise AnnotationLabelError(
                f"regions of class {name!r}, which is not one of the model's classes "
                f"({', '.join(class_names)}); add it with --add-class {name!r} or map it with "
                f"--class-map {name!r}=CLASS"
            )
        polygonal = region.geometry.area > 0
        if polygonal:
            by_class.setdefault("Ignore" if is_ignore(name) else name, []).append(region.geometry)
    if n == 0 or not by_class:
        return PatchLabels(labels, keep, counts)
    x, y = coords[:, 0].astype(float), coords[:, 1].astype(float)
    boxes = shapely.box(x, y, x + patch_size, y + patch_size)
    area = float(patch_size) ** 2
    share = {
        name: shapely.area(shapely.intersection(boxes, shapely.union_all(parts))) / area
        for name, parts in by_class.items()
    }
    ignored = share.pop("Ignore", np.zeros(n))
    keep = ignored <= MAJORITY
    counts["dropped"] = int((~keep).sum())
    covered = np.zeros(n)
    if share:
        names = list(share)
        stack = np.stack([share[c] for c in names])
        best = stack.argmax(axis=0)
        best_share = stack.max(axis=0)
        covered = (
            shapely.area(
                shapely.intersection(
                    boxes, shapely.union_all([g for c in names for g in by_class[c]])
                )
            )
            / area
        )
        for i, name in enumerate(names):
            chosen = keep & (best == i) & (best_share > MAJORITY)
            labels[chosen] = list(class_names).index(name)
            counts[name] = int(chosen.sum())
    if outside_class is not None:
        outside = keep & (labels < 0) & (covered <= MAJORITY)
        labels[outside] = list(class_names).index(outside_class)
        counts[outside_class] = counts.get(outside_class, 0) + int(outside.sum())
    return PatchLabels(labels, keep, counts)


def map_classes(regions: Sequence[Region], class_map: dict[str, str]) -> list[Region]:
    """The regions with their classes renamed by ``class_map`` (others as they are)."""
    if not class_map:
        return list(regions)
    return [
        _Renamed(r.geometry, class_map.get(str(r.classification), r.classification))
        for r in regions
    ]


@dataclass
class _Renamed:
    geometry: Any
    classification: str | None
