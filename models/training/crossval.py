"""K-fold cross-validation: K models, each tested on the fold it never saw.

The pool is every labelled slide (the ``train`` and ``val`` rows when the CSV has a split
column; ``test`` rows stay untouched). Folds are stratified (by class, or by event and
time quantile for survival). For fold k, the other folds are split again into training
and validation slides (stratified ``val_fraction``): validation drives early stopping and
the decision threshold, and fold k, unseen until then, gives the reported metrics. Each
fold's model is saved as ``<out stem>_fold{k}.safetensors``; the summary (every fold's
metrics, and their mean and standard deviation) as ``<out stem>_cv_summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.models.checkpoints import load_checkpoint, read_meta
from slidescope.models.errors import CheckpointError
from slidescope.models.files import write_text_atomic
from slidescope.models.jobs import Progress
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.data import (
    check_split,
    load_labelled_bags,
    validation_or_training,
)
from slidescope.models.training.evaluate import classification_metrics, survival_metrics
from slidescope.models.training.labels import stratified_folds, stratified_split
from slidescope.models.training.predict import predict_logits, softmax, survival_risk_np
from slidescope.models.training.trainer import TrainingResult, fit, resolve_device


@dataclass
class CrossValidationResult:
    """Per-fold metrics, their summary and the files written."""

    summary_path: Path
    fold_paths: list[Path]
    folds: list[dict[str, Any]]
    summary: dict[str, dict[str, float]] = field(default_factory=dict)


def fold_path(out: Path, k: int) -> Path:
    """``<out stem>_fold{k}<suffix>`` beside ``out``."""
    return out.with_name(f"{out.stem}_fold{k}{out.suffix}")


def _flatten(metrics: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict) and "value" in value:
            flat[key] = float(value["value"])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


def summarise(folds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and (sample) standard deviation of every metric over the folds."""
    keys = sorted({k for fold in folds for k in fold})
    summary = {}
    for key in keys:
        values = np.array([fold[key] for fold in folds if key in fold], dtype=np.float64)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            continue
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary[key] = {"mean": float(values.mean()), "std": std}
    return summary


def cross_validate(config: TrainingConfig, folds: int, resamples: int = 200) -> Iterator[Progress]:
    """Run K-fold cross-validation; a job returning :class:`CrossValidationResult`."""
    config.validate()
    base = load_labelled_bags(config)
    table = base.table
    pool = np.array([i for i, s in enumerate(table.splits) if s != "test"], dtype=np.int64)
    strata = base.strata
    assignments = stratified_folds(strata[pool], folds, config.seed)
    per_fold_steps = config.epochs * (len(pool) - min(len(a) for a in assignments))
    fold_results: list[dict[str, Any]] = []
    fold_paths: list[Path] = []
    device = resolve_device(config.device)
    for k, held in enumerate(assignments):
        test_rows = pool[held]
        rest = np.setdiff1d(pool, test_rows)
        kept, inner = stratified_split(strata[rest], config.val_fraction, config.seed + k)
        fold_set = dataclasses.replace(
            base,
            train_rows=rest[kept],
            val_rows=validation_or_training(table, rest[kept], rest[inner]),
        )
        check_split(fold_set)
        fold_config = dataclasses.replace(
            config,
            out=fold_path(config.out, k),
            teacher_init=fold_teacher_init(config.teacher_init, k, fold_set, test_rows),
        )
        result = yield from _in_fold(fit(fold_config, fold_set), k, folds, per_fold_steps)
        loaded = load_checkpoint(result.path)
        logits = predict_logits(loaded.model.to(device), base.bags, test_rows, device)
        if table.task == "survival":
            risk = survival_risk_np(logits)
            metrics = survival_metrics(
                table.times[test_rows], table.events[test_rows], risk, resamples, config.seed
            )
        else:
            metrics, _ = classification_metrics(
                table.targets[test_rows], softmax(logits), result.threshold, resamples, config.seed
            )
        flat = {f"test_{k2}": v for k2, v in _flatten(metrics).items()}
        flat.update({k2: float(v) for k2, v in result.metrics.items()})
        fold_results.append(
            {
                "fold": k,
                "checkpoint": str(result.path),
                "test_slides": [table.slide_ids[int(r)] for r in test_rows],
                "metrics": flat,
                "test_metrics_ci": metrics,
            }
        )
        fold_paths.append(result.path)
    summary = summarise([f["metrics"] for f in fold_results])
    summary_path = config.out.with_name(f"{config.out.stem}_cv_summary.json")
    document = {
        "folds": folds,
        "settings": config.to_meta(),
        "summary": summary,
        "per_fold": fold_results,
    }
    write_text_atomic(summary_path, json.dumps(_json_ready(document), indent=2))
    return CrossValidationResult(summary_path, fold_paths, fold_results, summary)


def _in_fold(
    job: Iterator[Progress], k: int, folds: int, per_fold_steps: int
) -> Iterator[Progress]:
    """Fold ``k``'s training job, its progress placed on the whole run's scale."""
    total, offset = per_fold_steps * folds, k * per_fold_steps
    try:
        while True:
            step = next(job)
            yield Progress(
                min(offset + step.done, total), total, f"fold {k + 1}/{folds}: {step.what}",
                step.metrics,
            )  # fmt: skip
    except StopIteration as stop:
        result: TrainingResult = stop.value
    finally:
        job.close()
    return result


def fold_teacher_init(
    teacher_init: Path | None, k: int, fold_set: Any, held_out: np.ndarray
) -> Path | None:
    """Fold ``k``'s plain checkpoint for the MHIM teacher, checked for leakage.

    ``teacher_init`` may hold ``{fold}`` (one checkpoint per fold, as the reference's
    ``fold_{k}_model_best_auc.pt``). A checkpoint whose training slides (recorded in its
    metadata) include a slide of fold ``k``'s held-out fold would leak those slides into
    the MHIM model tested on them: refused.

    Raises
    ------
    CheckpointError
        For a leaking checkpoint, or one that does not say what it trained on.
    """
    if teacher_init is None:
        return None
    path = Path(str(teacher_init).replace("{fold}", str(k)))
    trained_on = read_meta(path).training.get("train_slide_ids")
    if trained_on is None:
        raise CheckpointError(
            f"{path}: this checkpoint does not record its training slides, so it cannot be "
            "shown not to have seen fold {k}'s test slides; leave --teacher-init out (each "
            "fold then trains its own plain teacher) or give one checkpoint per fold with "
            "{fold} in the path"
        )
    held = {fold_set.table.slide_ids[int(r)] for r in held_out}
    leaked = sorted(held & set(trained_on))
    if leaked:
        raise CheckpointError(
            f"{path}: trained on {len(leaked)} slide(s) of fold {k}'s test fold "
            f"({', '.join(leaked[:5])}); a teacher must never see the slides its fold is "
            "tested on. Use one checkpoint per fold ({fold} in the path) or none"
        )
    return path


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
