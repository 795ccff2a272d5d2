"""Is a slide outside a model's experience? Distance of its features from the training set's.

At training time :func:`feature_stats` summarises the training features: the per-dimension
mean and variance of the instances, and the mean and variance over training slides of
each slide's mean feature, with quantiles of every training slide's own distance
(:func:`bag_distance`). The checkpoint keeps them as ``meta.feature_stats``.

For a new slide, :func:`experience_distance` measures how far its mean feature lies from
the training slides' centre, per dimension in units of the training slides' spread (a
diagonal Mahalanobis distance, root mean square over dimensions), and calls it outside
the model's experience when it is well beyond any training slide's. A stain, scanner or
tissue the model never saw moves the mean feature; a model's prediction there is an
extrapolation, whatever its confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: a slide is outside when its distance exceeds this multiple of the largest training
#: slide's distance (training distances are in-sample, hence optimistic: a margin is due)
OUTSIDE_FACTOR = 1.5
STATS_VERSION = 1


def _floored(variance: np.ndarray) -> np.ndarray:
    # A dimension constant over training slides would make any change infinitely far:
    # floor at 1 % of the median variance (and a tiny absolute floor for all-zero sets).
    variance = np.asarray(variance, dtype=np.float64)
    positive = variance[variance > 0]
    floor = 1e-2 * float(np.median(positive)) if positive.size else 1.0
    return np.maximum(variance, max(floor, 1e-12))


def bag_distance(bag_mean: np.ndarray, centre: np.ndarray, variance: np.ndarray) -> float:
    """Root-mean-square over dimensions of ``(bag_mean - centre) / sqrt(variance)``."""
    z = (np.asarray(bag_mean, np.float64) - centre) / np.sqrt(_floored(variance))
    return float(np.sqrt(np.mean(np.square(z))))


def feature_stats(
    instance_mean: np.ndarray, instance_var: np.ndarray, bag_means: np.ndarray
) -> dict[str, Any]:
    """The training features' summary kept in a checkpoint (JSON-friendly).

    Parameters
    ----------
    instance_mean, instance_var : ndarray
        (D,) per-dimension mean and variance over every training instance.
    bag_means : ndarray
        (n, D) mean feature of each training slide.
    """
    bag_means = np.asarray(bag_means, dtype=np.float64)
    centre = bag_means.mean(axis=0)
    variance = bag_means.var(axis=0) if len(bag_means) > 1 else np.asarray(instance_var)
    distances = np.array([bag_distance(m, centre, variance) for m in bag_means])
    return {
        "version": STATS_VERSION,
        "kind": "slide mean feature, diagonal Mahalanobis (RMS over dimensions)",
        "n_slides": len(bag_means),
        "instance_mean": [float(v) for v in instance_mean],
        "instance_var": [float(v) for v in instance_var],
        "slide_mean": [float(v) for v in centre],
        "slide_var": [float(v) for v in variance],
        "distance_quantiles": {
            "q50": float(np.quantile(distances, 0.5)),
            "q90": float(np.quantile(distances, 0.9)),
            "q99": float(np.quantile(distances, 0.99)),
            "max": float(distances.max()),
        },
    }


def _stats_of(metadata: Any) -> Mapping[str, Any] | None:
    if isinstance(metadata, Mapping):
        inner = metadata.get("feature_stats", metadata)
        return inner if isinstance(inner, Mapping) and inner else None
    stats = getattr(metadata, "feature_stats", None)
    return stats if isinstance(stats, Mapping) and stats else None


def experience_distance(features: Any, metadata: Any) -> tuple[float, bool, str]:
    """How far a slide's features are from the training slides', and whether too far.

    Parameters
    ----------
    features : array-like
        (N, D) patch features of the slide (numpy or torch), or its (D,) mean feature.
    metadata : CheckpointMeta or mapping
        The checkpoint metadata (its ``feature_stats``), or the stats themselves.

    Returns
    -------
    score : float
        The slide's distance (NaN when the checkpoint has no statistics).
    is_outside : bool
        True when ``score`` exceeds :data:`OUTSIDE_FACTOR` times the largest training
        slide's distance.
    reason : str
        A sentence for the user.
    """
    stats = _stats_of(metadata)
    if stats is None:
        return float("nan"), False, "the model carries no statistics of its training features"
    array = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features)
    array = array.astype(np.float64)
    centre = np.asarray(stats["slide_mean"], dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != centre.size:
        return (
            float("nan"),
            True,
            (
                f"the slide's features have {array.shape[-1]} dimensions, the model's "
                f"training features {centre.size}"
            ),
        )
    if array.shape[0] == 0:
        return float("nan"), False, "the slide has no patches"
    if not np.all(np.isfinite(array)):
        return float("nan"), True, "the slide's features hold NaN or infinite values"
    score = bag_distance(array.mean(axis=0), centre, np.asarray(stats["slide_var"]))
    largest = float(stats["distance_quantiles"]["max"])
    limit = OUTSIDE_FACTOR * max(largest, 1e-6)
    if score > limit:
        return (
            score,
            True,
            (
                f"its features are {score / max(largest, 1e-6):.1f}x further from the training "
                f"slides' centre than the furthest of the {stats['n_slides']} training slides: "
                "the model never saw slides like it (another stain, scanner or tissue?)"
            ),
        )
    return (
        score,
        False,
        (
            f"within the training slides' range (distance {score:.2f}; furthest training "
            f"slide {largest:.2f})"
        ),
    )
