"""Evaluation of a trained checkpoint on labelled slides: metrics, predictions, ROC curve.

The decision threshold of a two-class model is the one chosen on the VALIDATION slides
when it was trained (``meta.threshold``); the test slides never choose it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.models.errors import ModelError
from slidescope.models.features import (
    FeatureBags,
    check_feature_set,
    find_feature_files,
    read_feature_info,
)
from slidescope.models.files import atomic_path, write_text_atomic
from slidescope.models.jobs import Progress
from slidescope.models.training.labels import LabelsError, read_labels
from slidescope.models.training.metrics import (
    accuracy,
    balanced_accuracy,
    bootstrap_interval,
    concordance_index,
    f1_score,
    roc_auc,
    save_roc_png,
)
from slidescope.models.training.predict import predict_logits, softmax, survival_risk_np


@dataclass
class EvaluationResult:
    """Metrics and the files written.

    Attributes
    ----------
    metrics : dict
        ``{"auc": {"value", "ci_low", "ci_high"}, ...}`` plus ``n_slides`` etc.
    metrics_path, predictions_path : Path
    roc_path : Path or None
        The ROC figure (classification only).
    """

    metrics: dict[str, Any]
    metrics_path: Path
    predictions_path: Path
    roc_path: Path | None = None
    slide_ids: list[str] = field(default_factory=list)


def _with_interval(
    metric: Callable[[np.ndarray], float], n: int, resamples: int, seed: int
) -> dict[str, float]:
    low, high = bootstrap_interval(metric, n, resamples=resamples, seed=seed)
    return {"value": metric(np.arange(n)), "ci_low": low, "ci_high": high}


def classification_metrics(
    y: np.ndarray,
    probs: np.ndarray,
    threshold: float | None,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray]:
    """AUC, accuracy, balanced accuracy and F1 with 95 % bootstrap intervals.

    Parameters
    ----------
    y : ndarray
        (n,) true class indices.
    probs : ndarray
        (n, C) predicted probabilities.
    threshold : float or None
        Two classes: predict the positive class when its probability is >= threshold
        (0.5 when None). More classes: the most probable class.

    Returns
    -------
    metrics : dict
    predicted : ndarray
        (n,) predicted class indices.
    """
    n_classes = probs.shape[1]
    if n_classes == 2:
        cut = 0.5 if threshold is None else threshold
        predicted = (probs[:, 1] >= cut).astype(np.int64)
    else:
        predicted = probs.argmax(axis=1)
    n = len(y)
    metrics: dict[str, Any] = {
        "auc": _with_interval(lambda i: roc_auc(y[i], probs[i]), n, resamples, seed),
        "accuracy": _with_interval(lambda i: accuracy(y[i], predicted[i]), n, resamples, seed),
        "balanced_accuracy": _with_interval(
            lambda i: balanced_accuracy(y[i], predicted[i]), n, resamples, seed
        ),
        "f1": _with_interval(
            lambda i: f1_score(y[i], predicted[i], n_classes), n, resamples, seed
        ),
        "n_slides": n,
        "threshold": None if n_classes != 2 else (0.5 if threshold is None else threshold),
    }
    return metrics, predicted


def survival_metrics(
    times: np.ndarray, events: np.ndarray, risk: np.ndarray, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """c-index with its 95 % bootstrap interval."""
    n = len(times)
    return {
        "c_index": _with_interval(
            lambda i: concordance_index(times[i], events[i], risk[i]), n, resamples, seed
        ),
        "n_slides": n,
        "n_events": int(np.sum(events)),
    }


def _write_atomic(path: Path, text: str) -> None:
    write_text_atomic(path, text)


class PredictionError(ModelError):
    """A model gave NaN or infinite outputs: no figures are reported."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_predictions(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """Write a CSV atomically."""
    with atomic_path(path) as temp, temp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def evaluate(
    checkpoint: str | Path,
    features: str | Path,
    labels: str | Path,
    out: str | Path,
    resamples: int = 1000,
    seed: int = 0,
    device: str = "auto",
    skip_missing: bool = False,
) -> Iterator[Progress]:
    """Score the ``test`` rows of a labels CSV (all rows without a split column).

    A job: yields :class:`Progress` per slide and returns an
    :class:`EvaluationResult`. Writes ``out`` (metrics JSON), ``<out stem>_predictions.csv``
    and, for classification, ``<out stem>_roc.png`` beside it.

    Raises
    ------
    CheckpointError
        When the features do not match the checkpoint's extractor or dimension.
    LabelsError, FeatureFileError
        For unreadable labels or feature files.
    """
    from slidescope.models.checkpoints import check_compatible, load_checkpoint
    from slidescope.models.training.trainer import resolve_device

    out = Path(out)
    loaded = load_checkpoint(checkpoint)
    meta = loaded.meta
    training = dict(meta.training or {})
    task = str(training.get("task", "classification"))
    class_names = list(meta.class_names) if task == "classification" else None
    table = read_labels(labels, task=task, class_names=class_names)
    rows = table.rows_of_split("test") if table.has_split else list(range(len(table)))
    if not rows:
        raise LabelsError(f"{table.path}: no 'test' rows to evaluate")
    table = table.subset(rows)
    found, missing = find_feature_files(features, table.slide_ids, skip_missing)
    if missing:
        table = table.subset([i for i, s in enumerate(table.slide_ids) if s in found])
    paths = [found[s] for s in table.slide_ids]
    reference = check_feature_set([read_feature_info(p) for p in paths])
    check_compatible(meta, reference.extractor, reference.feature_dim, str(features))
    torch_device = resolve_device(device)
    model = loaded.model.to(torch_device).eval()
    bags = FeatureBags(paths, cache_bytes=0)
    logits_rows = []
    for i in range(len(table)):
        logits_rows.append(predict_logits(model, bags, [i], torch_device)[0])
        yield Progress(i + 1, len(table), table.slide_ids[i])
    logits = np.stack(logits_rows)
    bad = [table.slide_ids[i] for i in range(len(table)) if not np.all(np.isfinite(logits[i]))]
    if bad:
        # Metrics of NaN probabilities are meaningless (a NaN sorts anywhere in an AUC).
        raise PredictionError(
            f"{checkpoint}: the model gives NaN or infinite outputs on {len(bad)} slide(s) "
            f"({', '.join(bad[:5])}); the checkpoint is damaged or diverged, nothing written"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    predictions_path = out.with_name(f"{out.stem}_predictions.csv")
    roc_path: Path | None = None
    if task == "survival":
        risk = survival_risk_np(logits)
        metrics = survival_metrics(table.times, table.events, risk, resamples, seed)
        write_predictions(
            predictions_path,
            ["slide_id", "time", "event", "risk"],
            [
                [s, t, int(e), float(r)]
                for s, t, e, r in zip(table.slide_ids, table.times, table.events, risk)
            ],
        )
    else:
        probs = softmax(logits)
        names = list(meta.class_names)
        metrics, predicted = classification_metrics(
            table.targets, probs, meta.threshold, resamples, seed
        )
        write_predictions(
            predictions_path,
            ["slide_id", "label", "predicted", *[f"prob_{n}" for n in names]],
            [
                [s, names[t], names[p], *[f"{v:.6f}" for v in pr]]
                for s, t, p, pr in zip(table.slide_ids, table.targets, predicted, probs)
            ],
        )
        roc_path = save_roc_png(out.with_name(f"{out.stem}_roc.png"), table.targets, probs, names)
    metrics.update(checkpoint=str(checkpoint), task=task, missing_slides=missing)
    _write_atomic(out, json.dumps(_json_safe(metrics), indent=2))
    return EvaluationResult(metrics, out, predictions_path, roc_path, list(table.slide_ids))
