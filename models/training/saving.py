"""Checkpoints of a training run: what is saved with the weights, and the teacher init."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slidescope.models.checkpoints import CheckpointMeta, load_into, save_checkpoint
from slidescope.models.features import FeatureFileInfo
from slidescope.models.mil.base import MILModel
from slidescope.models.training.config import TrainingConfig
from torch import nn


def training_meta(
    config: TrainingConfig,
    model: MILModel,
    reference: FeatureFileInfo,
    class_names: list[str],
    metrics: dict[str, Any],
    threshold: float | None,
    survival_edges: list[float] | None = None,
) -> CheckpointMeta:
    """The checkpoint metadata of a trained model.

    ``extractor``, ``patch_size`` and ``target_mpp`` come from the training feature
    files; ``training`` holds every setting (MHIM's under the keys inference reads) and,
    for survival, the time-bin edges (``survival_bin_edges``) fitted on the training set.
    """
    training = config.to_meta()
    training["patch_size_level0"] = reference.patch_size_level0
    if survival_edges is not None:
        training["survival_bin_edges"] = list(survival_edges)
    return CheckpointMeta.for_model(
        model,
        class_names=list(class_names),
        task=config.task,
        extractor=reference.extractor,
        patch_size=reference.patch_size,
        target_mpp=reference.target_mpp,
        training=training,
        metrics=dict(metrics),
        threshold=threshold,
    )


def save_trained(
    config: TrainingConfig,
    model: MILModel,
    teacher: nn.Module | None,
    reference: FeatureFileInfo,
    class_names: list[str],
    metrics: dict[str, Any],
    threshold: float | None,
    survival_edges: list[float] | None = None,
    extra: dict[str, Any] | None = None,
    feature_stats: dict[str, Any] | None = None,
) -> Path:
    """Save the student (and the MHIM teacher beside it) to ``config.out``.

    ``extra`` joins ``meta.training`` (the run's slides and fingerprint);
    ``feature_stats`` becomes ``meta.feature_stats``.
    """
    meta = training_meta(config, model, reference, class_names, metrics, threshold, survival_edges)
    meta.training.update(extra or {})
    meta.feature_stats = dict(feature_stats or {})
    return save_checkpoint(config.out, model, meta, teacher=teacher)


def load_teacher_init(path: Path, model: MILModel) -> None:
    """Load a plain-trained checkpoint into ``model`` (architecture and dimension checked)."""
    load_into(model, path)
