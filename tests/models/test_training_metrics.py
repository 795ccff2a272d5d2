"""Metrics against scikit-learn (imported in tests only) and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from slidescope.models.training.metrics import (
    accuracy,
    balanced_accuracy,
    binary_auc,
    bootstrap_interval,
    concordance_index,
    f1_score,
    roc_auc,
    roc_curve,
    save_roc_png,
    youden_threshold,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_binary_auc_with_ties(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # rounding makes many ties
    assert binary_auc(y, score) == pytest.approx(sklearn_metrics.roc_auc_score(y, score))


def test_multiclass_macro_ovr_auc(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3)) + np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = sklearn_metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert roc_auc(y, probs) == pytest.approx(expected)


def test_auc_nan_with_one_class() -> None:
    assert np.isnan(binary_auc(np.ones(5), np.arange(5)))


def test_roc_curve_matches_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 60)
    score = np.round(rng.random(60), 2)
    fpr, tpr, thr = roc_curve(y, score)
    s_fpr, s_tpr, _ = sklearn_metrics.roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(fpr, s_fpr)
    assert np.allclose(tpr, s_tpr)
    assert np.isinf(thr[0])


def test_classification_metrics_vs_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 100)
    pred = np.where(rng.random(100) < 0.7, y, rng.integers(0, 3, 100))
    assert accuracy(y, pred) == pytest.approx(sklearn_metrics.accuracy_score(y, pred))
    assert balanced_accuracy(y, pred) == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(y, pred)
    )
    assert f1_score(y, pred, 3) == pytest.approx(
        sklearn_metrics.f1_score(y, pred, average="macro", zero_division=0)
    )
    yb, pb = y % 2, pred % 2
    assert f1_score(yb, pb, 2) == pytest.approx(sklearn_metrics.f1_score(yb, pb))


def test_youden_threshold_separates_perfectly() -> None:
    y = np.array([0, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.4, 0.6, 0.9])
    threshold = youden_threshold(y, score)
    assert 0.4 < threshold <= 0.6
    assert np.array_equal(score >= threshold, y == 1)


def test_concordance_index_brute_force(rng: np.random.Generator) -> None:
    time = rng.integers(1, 20, 40).astype(float)
    event = rng.integers(0, 2, 40)
    risk = np.round(rng.random(40), 1)
    concordant = comparable = 0.0
    for i, j in itertools.permutations(range(40), 2):
        if event[i] and time[i] < time[j]:
            comparable += 1
            concordant += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    assert concordance_index(time, event, risk) == pytest.approx(concordant / comparable)


def test_bootstrap_interval_contains_point(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 80)
    score = rng.random(80) + 0.5 * y
    point = binary_auc(y, score)
    low, high = bootstrap_interval(lambda i: binary_auc(y[i], score[i]), 80, 300, seed=1)
    assert low <= point <= high
    assert low < high
    again = bootstrap_interval(lambda i: binary_auc(y[i], score[i]), 80, 300, seed=1)
    assert again == (low, high)


def test_save_roc_png(tmp_path, rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 30)
    probs = np.stack([1 - rng.random(30), rng.random(30)], axis=1)
    path = save_roc_png(tmp_path / "roc.png", y, probs, ["neg", "pos"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_youden_threshold_prefers_the_neutral_point_of_an_optimal_gap() -> None:
    # A small validation set separated by a wide gap: any cut in (0.2, 0.95] is optimal;
    # 0.5 carries over to new slides better than the gap's far end.
    y = np.array([0, 0, 1, 1])
    assert youden_threshold(y, np.array([0.1, 0.2, 0.95, 0.99])) == 0.5
    # No optimal gap holds 0.5: the midpoint of the optimal gap nearest to it.
    assert youden_threshold(y, np.array([0.6, 0.7, 0.8, 0.9])) == pytest.approx(0.75)
    assert youden_threshold(y, np.array([0.01, 0.02, 0.04, 0.06])) == pytest.approx(0.03)
    # Unsorted labels: the optimal cut lies in (0.4, 0.6], which holds 0.5.
    y = np.array([0, 1, 0, 1, 1, 0, 1])
    score = np.array([0.1, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    assert youden_threshold(y, score) == 0.5


def test_youden_threshold_needs_enough_slides_of_each_class() -> None:
    # two slides of a class put the cut anywhere in a gap: the neutral point stands
    y = np.array([1, 0, 0, 1])
    score = np.array([0.999, 0.995, 0.2, 0.1])
    assert youden_threshold(y, score) == pytest.approx(0.997)
    assert youden_threshold(y, score, min_per_class=5) == 0.5
