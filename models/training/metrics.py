"""Metrics of slide-level predictions, written with numpy alone.

AUC (ranks with ties; macro one-vs-rest for several classes), accuracy, balanced
accuracy, F1, Youden's threshold, bootstrap confidence intervals, Harrell's c-index, and a
ROC curve figure (matplotlib Agg, imported only when drawing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from slidescope.models.files import atomic_path


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def binary_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); NaN when a class is absent."""
    y = np.asarray(y_true).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """AUC of (n,) class indices against (n, C) probabilities.

    Two classes: the AUC of the positive class (index 1). More: the unweighted mean of the
    one-vs-rest AUCs of the classes present both as positive and negative.
    """
    y = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1 or probs.shape[1] == 2:
        score = probs if probs.ndim == 1 else probs[:, 1]
        return binary_auc(y == 1, score)
    aucs = [binary_auc(y == c, probs[:, c]) for c in range(probs.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds descending.

    The first point is (0, 0) with threshold +inf; a point per distinct score follows
    (predict positive when ``score >= threshold``).
    """
    y = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    score_sorted = score[order]
    y_sorted = y[order]
    last_of_run = np.r_[score_sorted[1:] != score_sorted[:-1], True]
    tps = np.cumsum(y_sorted)[last_of_run]
    fps = np.cumsum(~y_sorted)[last_of_run]
    thresholds = score_sorted[last_of_run]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return fpr, tpr, np.r_[np.inf, thresholds]


#: fewer validation slides than this in a class, and Youden's threshold is noise (four
#: slides put it anywhere in a gap): the neutral point stands
MIN_PER_CLASS = 5


def youden_threshold(
    y_true: np.ndarray, score: np.ndarray, neutral: float = 0.5, min_per_class: int = 1
) -> float:
    """The score threshold that maximises Youden's J = TPR - FPR (``neutral`` when undefined,
    or when a class has fewer than ``min_per_class`` validation slides).

    Chosen on validation data. Every threshold in a gap between two neighbouring
    validation scores gives the same J, so the gap is chosen first: the maximal-J gap
    that contains ``neutral`` (the probability at which a class-balanced loss puts the
    decision) when there is one — on a small validation set a perfectly separating gap is
    wide, and a threshold at its far end would not carry over to new slides — otherwise
    the maximal-J gap nearest ``neutral``, at its midpoint, so that slightly shifted test
    scores are not sent across it by rounding.
    """
    y = np.asarray(y_true).astype(bool)
    if min(int(y.sum()), int((~y).sum())) < max(min_per_class, 1):
        return neutral
    fpr, tpr, thresholds = roc_curve(y, score)
    j = tpr[1:] - fpr[1:]
    # Predicting positive at ``score >= t`` gives the same result for every t in
    # (next lower score, score at index b]; the lowest threshold's gap is open below.
    uppers = thresholds[1:]
    lowers = np.r_[thresholds[2:], -np.inf]
    best = np.flatnonzero(j >= j.max() - 1e-12)
    for b in best:
        if lowers[b] < neutral <= uppers[b]:
            return float(neutral)
    distance = [min(abs(neutral - uppers[b]), abs(neutral - lowers[b])) for b in best]
    b = best[int(np.argmin(distance))]
    lower = lowers[b] if np.isfinite(lowers[b]) else uppers[b]
    return float((uppers[b] + lower) / 2.0)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(recalls)) if recalls else float("nan")


def f1_score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 2) -> float:
    """F1 of the positive class (two classes) or macro F1 over ``n_classes``.

    A class never predicted nor present counts F1 0 in the macro mean, as scikit-learn's
    ``zero_division=0``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = [1] if n_classes == 2 else list(range(n_classes))
    scores = []
    for c in classes:
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def concordance_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's c-index: share of comparable pairs ordered correctly by risk.

    A pair (i, j) is comparable when ``time_i < time_j`` and i had the event; it is
    concordant when ``risk_i > risk_j``; tied risks count one half.
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, dtype=np.float64)
    concordant = 0.0
    comparable = 0
    for i in np.flatnonzero(event):
        later = time > time[i]
        comparable += int(later.sum())
        concordant += float(np.sum(risk[i] > risk[later]) + 0.5 * np.sum(risk[i] == risk[later]))
    return concordant / comparable if comparable else float("nan")


def bootstrap_interval(
    metric: Callable[[np.ndarray], float],
    n: int,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(rows)`` over ``resamples`` draws of rows.

    Parameters
    ----------
    metric : callable
        Takes an index array (rows drawn with replacement) and returns the metric; NaN
        results (e.g. a resample with one class) are left out.
    n : int
        Number of rows.
    """
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = metric(rng.integers(0, n, size=n))
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def save_roc_png(
    path: str | Path, y_true: np.ndarray, probs: np.ndarray, class_names: list[str]
) -> Path:
    """Draw the ROC curve(s) to a PNG (one-vs-rest per class for more than two)."""
    # A bare Figure renders with Agg without touching pyplot's global backend (the UI
    # process may have chosen a Qt one).
    from matplotlib.figure import Figure

    path = Path(path)
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    probs = np.asarray(probs)
    y = np.asarray(y_true)
    curves = [1] if probs.shape[1] == 2 else list(range(probs.shape[1]))
    drawn = 0
    for c in curves:
        positives = y == c
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, probs[:, c])
        auc = binary_auc(positives, probs[:, c])
        axes.plot(fpr, tpr, label=f"{class_names[c]} (AUC {auc:.3f})")
        drawn += 1
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    if drawn:  # a test set of one class has no curve to name
        axes.legend(loc="lower right")
    axes.set_title("ROC")
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")
    return path
