"""The review queue: most uncertain attended patches first, spread over the slide."""

from __future__ import annotations

import itertools

import numpy as np
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.slides.slide import SlideIdentity
from slidescope.app.training.review_queue import ReviewCursor, review_queue, uncertainty


def _analysis(attention, hard, masked, probs) -> SlideAnalysis:
    n = len(attention)
    coords = np.array([(i * 100, 0) for i in range(n)], np.int64)
    return SlideAnalysis(
        identity=SlideIdentity("s", "f", 100 * n, 100, (0.5, 0.5)),
        coords=coords, patch_size_level0=100, class_names=["lesion", "normal"],
        probabilities=np.array([0.8, 0.2]), attention=np.asarray(attention, float),
        instance_probs=np.stack([probs, 1 - np.asarray(probs)], axis=1),
        masked=np.asarray(masked, bool), hard_attention=np.asarray(hard, float),
        mask_ratio=0.1, mask_scores=np.asarray(attention, float),
    )  # fmt: skip


def test_disagreement_and_boundary_rank_patches() -> None:
    # patch 5: ignored by attention but the hard-instance attention turns to it
    attention = [0.5, 0.2, 0.1, 0.05, 0.05, 0.02, 0.03, 0.05]
    hard = [0.0, 0.1, 0.1, 0.05, 0.05, 0.6, 0.05, 0.05]
    masked = [True, False, False, False, False, False, False, False]
    probs = np.array([0.99, 0.8, 0.75, 0.1, 0.1, 0.1, 0.01, 0.1])
    score, _ = uncertainty(_analysis(attention, hard, masked, probs))
    assert score[0] < score[5]  # the salient, masked patch is settled
    queue = review_queue(_analysis(attention, hard, masked, probs), spacing=0)
    assert queue[0].index == 5
    assert all(a.uncertainty >= b.uncertainty for a, b in itertools.pairwise(queue))


def test_neighbours_are_suppressed_and_cursor_steps() -> None:
    n = 12
    attention = np.linspace(1, 2, n)
    hard = attention[::-1].copy()
    queue = review_queue(_analysis(attention, hard, [False] * n, np.linspace(0, 1, n)))
    xs = sorted(item.x for item in queue)
    assert all(b - a > 200 for a, b in itertools.pairwise(xs))
    cursor = ReviewCursor(queue)
    assert cursor.previous() is None
    first = cursor.next()
    assert first is queue[0]
    assert cursor.next() is queue[1]
    assert cursor.previous() is queue[0]
