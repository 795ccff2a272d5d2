"""The prediction rule: how a model's class probabilities become a slide's label.

A checkpoint holds its rule (:attr:`CheckpointMeta.threshold`): a two-class model labels a
slide positive (class 1) when the positive probability reaches the threshold chosen on the
validation slides when it was trained (Youden's J); without one, and for more classes, the
most probable class wins. Every face — ``evaluate``, ``export``, the window's prediction
panel — calls :func:`predict_labels`, so one slide gets one label everywhere.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

#: the positive-class cut of a two-class model that carries no threshold (= argmax)
DEFAULT_THRESHOLD = 0.5


class HasThreshold(Protocol):
    """Anything that carries the rule: a checkpoint's metadata, a stored slide result."""

    @property
    def threshold(self) -> float | None: ...


def decision_threshold(threshold: float | None, n_classes: int) -> float | None:
    """The positive-class cut actually applied: None (argmax) unless there are two classes."""
    if n_classes != 2:
        return None
    return DEFAULT_THRESHOLD if threshold is None else float(threshold)


def predict_labels(probabilities: np.ndarray, rule: HasThreshold | float | None) -> np.ndarray:
    """Class indices predicted from probabilities by a checkpoint's rule.

    Parameters
    ----------
    probabilities : ndarray
        ``(n, C)`` class probabilities.
    rule : CheckpointMeta, float or None
        The checkpoint's metadata (its ``threshold``), or the threshold itself.

    Returns
    -------
    ndarray
        ``(n,)`` int64 class indices; ``-1`` where the probabilities are not finite
        (a slide without tissue).
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (n, C), got shape {probs.shape}")
    threshold = rule if rule is None or isinstance(rule, (int, float)) else rule.threshold
    cut = decision_threshold(threshold, probs.shape[1])
    if cut is None:
        labels = probs.argmax(axis=1) if probs.shape[1] else np.zeros(len(probs), np.int64)
    else:
        labels = (probs[:, 1] >= cut).astype(np.int64)
    labels = labels.astype(np.int64)
    labels[~np.isfinite(probs).all(axis=1) | (probs.shape[1] == 0)] = -1
    return labels


def predict_label(probabilities: np.ndarray, rule: HasThreshold | float | None) -> int | None:
    """One slide's class index from its ``(C,)`` probabilities; None without tissue."""
    label = int(predict_labels(np.asarray(probabilities).reshape(1, -1), rule)[0])
    return None if label < 0 else label
