"""Where to annotate next: the patches the model is least sure of, best first.

MHIM's hard instances become the pathologist's to-do list. For one slide's analysis, each
patch gets an uncertainty in [0, 1], the larger of:

- disagreement: how far apart the patch's rank is under the scores that choose the salient
  set (the teacher's when the analysis used it, otherwise the model's own) and under the
  attention once that set is hidden (the hard-instance attention) — a patch the model
  turns to only when the obvious evidence is masked, or one it ignores then, is where its
  evidence is unsettled;
- boundary: how close the patch's class-aware instance probability of the slide's
  predicted class is to the middle of its range on the slide (min-max scaled), i.e. to the
  decision boundary between "evidence" and "not".

Only patches the model attends to at all (attention or hard-instance attention in the top
half of the slide) are queued: a confidently ignored patch of background is not worth a
pathologist's click. Neighbours of a queued patch are suppressed (within ``spacing``
patches) so that the queue walks across the slide rather than along one lesion's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from slidescope.app.analysis.slide_analysis import SlideAnalysis

RULE = (
    "uncertainty = the larger of the disagreement between the salient-set ranking and the "
    "hard-instance attention ranking, and the closeness of the instance probability to the "
    "middle of its range; only attended patches, neighbours suppressed"
)


@dataclass(frozen=True)
class ReviewItem:
    """One place to look at: a patch, its box in level-0 px and why it is queued."""

    index: int
    x: int
    y: int
    size: int
    uncertainty: float
    reason: str


def _rank01(values: np.ndarray) -> np.ndarray:
    order = np.argsort(np.argsort(values, kind="mergesort"), kind="mergesort")
    return order / max(len(values) - 1, 1)


def uncertainty(analysis: SlideAnalysis) -> tuple[np.ndarray, np.ndarray]:
    """(N,) uncertainty and (N,) bool "boundary was the larger term" of every patch."""
    n = analysis.n_patches
    if n == 0:
        return np.zeros(0), np.zeros(0, bool)
    attention = np.asarray(analysis.attention, np.float64)
    hard = np.asarray(analysis.hard_attention, np.float64)
    salient = np.asarray(
        analysis.mask_scores if len(analysis.mask_scores) == n else attention, np.float64
    )
    disagreement = np.abs(_rank01(salient) - _rank01(hard))
    # a masked patch has no hard-instance attention by construction: not a disagreement
    disagreement[np.asarray(analysis.masked, bool)] = 0.0
    predicted = analysis.predicted_index or 0
    prob = np.asarray(analysis.instance_probs, np.float64)[:, predicted]
    span = prob.max() - prob.min()
    scaled = (prob - prob.min()) / span if span > 0 else np.full(n, 0.0)
    boundary = 1.0 - np.abs(2.0 * scaled - 1.0) if span > 0 else np.zeros(n)
    attended = (_rank01(attention) >= 0.5) | (_rank01(hard) >= 0.5)
    score = np.where(attended, np.maximum(disagreement, boundary), 0.0)
    return score, boundary > disagreement


def review_queue(analysis: SlideAnalysis, limit: int = 50, spacing: int = 2) -> list[ReviewItem]:
    """The ``limit`` most uncertain patches, neighbours within ``spacing`` patches suppressed."""
    score, by_boundary = uncertainty(analysis)
    size = int(analysis.patch_size_level0)
    coords = np.asarray(analysis.coords, np.int64)
    items: list[ReviewItem] = []
    taken: list[np.ndarray] = []
    for index in np.argsort(-score, kind="mergesort"):
        if score[index] <= 0 or len(items) >= limit:
            break
        here = coords[index]
        if any(np.abs(here - other).max() <= spacing * size for other in taken):
            continue
        taken.append(here)
        reason = (
            "near the decision boundary"
            if by_boundary[index]
            else ("teacher and hard-instance attention disagree")
        )
        items.append(
            ReviewItem(int(index), int(here[0]), int(here[1]), size, float(score[index]), reason)
        )
    return items


class ReviewCursor:
    """Steps through a queue (next / previous), wrapping at neither end."""

    def __init__(self, items: list[ReviewItem]) -> None:
        self.items = items
        self.position = -1

    @property
    def current(self) -> ReviewItem | None:
        return self.items[self.position] if 0 <= self.position < len(self.items) else None

    def next(self) -> ReviewItem | None:
        if self.position < len(self.items) - 1:
            self.position += 1
        return self.current

    def previous(self) -> ReviewItem | None:
        if self.position > 0:
            self.position -= 1
        return self.current
