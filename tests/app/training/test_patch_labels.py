"""Region annotations -> patch labels, and slide labels derived from annotations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from shapely.geometry import box
from slidescope.app.training.patch_labels import (
    AnnotationLabelError,
    derive_label,
    label_patches,
)

CLASSES = ["lesion", "normal"]


@dataclass
class R:
    geometry: Any
    classification: str | None


def _grid(n: int = 4, size: int = 100) -> np.ndarray:
    return np.array([(x * size, y * size) for y in range(n) for x in range(n)], np.int64)


def test_a_patch_mostly_inside_a_region_is_of_its_class() -> None:
    coords = _grid()
    # covers patch (0, 0) fully, patch (100, 0) by 60 %, patch (200, 0) by 40 %
    regions = [R(box(0, 0, 160, 100), "lesion"), R(box(240, 0, 200, 100), "lesion")]
    result = label_patches(coords, 100, regions, CLASSES)
    assert result.labels[0] == 0
    assert result.labels[1] == 0
    assert result.labels[2] == -1  # only the second box, 40 %
    assert result.labels[5] == -1
    assert result.counts["lesion"] == 2


def test_union_of_same_class_regions_counts_once_and_exactly_half_is_not_most() -> None:
    coords = np.array([[0, 0]])
    overlapping = [R(box(0, 0, 50, 100), "lesion"), R(box(0, 0, 50, 100), "lesion")]
    assert label_patches(coords, 100, overlapping, CLASSES).labels[0] == -1
    adjacent = [R(box(0, 0, 30, 100), "lesion"), R(box(30, 0, 60, 100), "lesion")]
    assert label_patches(coords, 100, adjacent, CLASSES).labels[0] == 0


def test_ignore_regions_drop_their_patches() -> None:
    coords = _grid(2)
    regions = [R(box(0, 0, 100, 100), "Ignore*"), R(box(0, 0, 200, 200), "lesion")]
    result = label_patches(coords, 100, regions, CLASSES)
    assert result.keep.tolist() == [False, True, True, True]
    assert result.labels[1:].tolist() == [0, 0, 0]
    assert result.counts["dropped"] == 1


def test_outside_class_labels_the_rest_of_an_annotated_slide() -> None:
    coords = _grid(2)
    regions = [R(box(0, 0, 100, 100), "lesion")]
    result = label_patches(coords, 100, regions, CLASSES, outside_class="normal")
    assert result.labels.tolist() == [0, 1, 1, 1]
    without = label_patches(coords, 100, regions, CLASSES)
    assert without.labels.tolist() == [0, -1, -1, -1]


def test_a_region_of_an_unknown_class_is_refused_with_the_way_out() -> None:
    with pytest.raises(AnnotationLabelError, match="--add-class 'Mucinous'"):
        label_patches(_grid(1), 100, [R(box(0, 0, 100, 100), "Mucinous")], CLASSES)


def test_label_derivation_rule() -> None:
    lesion = R(box(0, 0, 1, 1), "lesion")
    normal = R(box(0, 0, 1, 1), "normal")
    ignore = R(box(0, 0, 1, 1), "Ignore*")
    assert derive_label([lesion, ignore], CLASSES, None) == "lesion"
    assert derive_label([lesion, normal], CLASSES, "normal") == "lesion"
    assert derive_label([normal], CLASSES, "normal") == "normal"
    assert derive_label([lesion, normal], CLASSES, None) is None  # ambiguous
    assert derive_label([ignore], CLASSES, "normal") is None
    assert derive_label([], CLASSES, "normal") is None
