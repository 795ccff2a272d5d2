"""A training set on disk: labels, feature files, and the train / validation split."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from slidescope.models.errors import FeatureFileError
from slidescope.models.features import (
    FeatureBags,
    FeatureFileInfo,
    check_feature_set,
    find_feature_files,
    read_feature_info,
)
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.labels import (
    LabelTable,
    quantile_time_bins,
    read_labels,
    stratified_split,
    survival_strata,
    time_to_bin,
)


@dataclass
class TrainingSet:
    """Labelled bags ready for training.

    Attributes
    ----------
    table : LabelTable
        Every labelled slide with a feature file (all splits).
    paths : list of Path
        The feature file of each row of ``table``.
    reference : FeatureFileInfo
        Metadata shared by every file (extractor, dimension, patch geometry).
    bags : FeatureBags
        The bags of ``table``'s rows, streamed through a bounded cache.
    train_rows, val_rows : ndarray
        Rows of ``table`` used for fitting and for early stopping / the threshold.
    """

    table: LabelTable
    paths: list[Path]
    reference: FeatureFileInfo
    bags: FeatureBags
    train_rows: np.ndarray
    val_rows: np.ndarray

    @property
    def strata(self) -> np.ndarray:
        """Per-row strata for stratified splitting."""
        if self.table.task == "survival":
            return survival_strata(self.table)
        return self.table.targets


def load_labelled_bags(config: TrainingConfig) -> TrainingSet:
    """Read the labels and find and check their feature files (no split yet)."""
    table = read_labels(config.labels, task=config.task)
    found, missing = find_feature_files(config.features, table.slide_ids, config.skip_missing)
    if missing:
        warnings.warn(
            f"{config.features}: leaving out {len(missing)} labelled slide(s) without a "
            f"feature file: {', '.join(missing[:10])}",
            stacklevel=3,
        )
        table = table.subset([i for i, s in enumerate(table.slide_ids) if s in found])
    paths = [found[s] for s in table.slide_ids]
    reference = check_feature_set([read_feature_info(p) for p in paths])
    bags = FeatureBags(paths, cache_bytes=config.cache_bytes)
    none = np.zeros(0, np.int64)
    return TrainingSet(table, paths, reference, bags, none, none)


def load_training_set(config: TrainingConfig) -> TrainingSet:
    """Read the labels, find and check the feature files, and split train / validation.

    With a ``split`` column, ``train`` rows fit the model and ``val`` rows validate it (a
    stratified share of ``train`` is held out when there are no ``val`` rows); ``test``
    rows are left for :mod:`evaluate`. Without one, a stratified ``val_fraction`` of the
    slides is held out (seeded).

    Raises
    ------
    FeatureFileError, LabelsError
        For missing, incomplete or mixed feature files and unreadable labels.
    """
    training_set = load_labelled_bags(config)
    table = training_set.table
    if table.has_split:
        train = np.array(
            [i for i, s in enumerate(table.splits) if s in ("train", None)], dtype=np.int64
        )
        val = np.array(table.rows_of_split("val"), dtype=np.int64)
        if len(val) == 0:
            kept, held = stratified_split(
                training_set.strata[train], config.val_fraction, config.seed
            )
            train, val = train[kept], train[held]
    else:
        train, val = stratified_split(training_set.strata, config.val_fraction, config.seed)
    training_set.train_rows, training_set.val_rows = (
        train,
        validation_or_training(training_set.table, train, val),
    )
    check_split(training_set)
    return training_set


def validation_or_training(table: LabelTable, train: np.ndarray, val: np.ndarray) -> np.ndarray:
    """The validation rows, or the training rows when a tiny set leaves none to hold out.

    With one slide per class (a fold of a five-bag set), holding one out would drop its
    class from training, so the model is validated on its training slides instead, with a
    warning: early stopping and the decision threshold are then optimistic.
    """
    if len(val) or not len(train):
        return val
    warnings.warn(
        f"{table.path}: too few slides per class ({len(train)} in all) to hold out a "
        "validation set; validating on the training slides (early stopping and the "
        "decision threshold are optimistic); add slides or a 'val' split",
        stacklevel=3,
    )
    return train.copy()


def check_split(training_set: TrainingSet) -> None:
    """Refuse a split that cannot train or validate a model."""
    table = training_set.table
    if len(training_set.train_rows) == 0:
        raise FeatureFileError(f"{table.path}: no training slides")
    if len(training_set.val_rows) == 0:
        raise FeatureFileError(
            f"{table.path}: no validation slides; add a 'val' split or more slides per class"
        )
    if table.task == "classification":
        present = set(table.targets[training_set.train_rows].tolist())
        absent = [n for i, n in enumerate(table.class_names) if i not in present]
        if absent:
            raise FeatureFileError(
                f"{table.path}: no training slides of class(es) {', '.join(absent)}"
            )
    elif not np.any(table.events[training_set.train_rows] == 1):
        raise FeatureFileError(f"{table.path}: no training slide with an observed event")


def survival_targets(training_set: TrainingSet, n_bins: int) -> tuple[np.ndarray, list[float]]:
    """Discrete-time bin of every row, with bin edges from the training rows."""
    table = training_set.table
    rows = training_set.train_rows
    edges = quantile_time_bins(table.times[rows], table.events[rows], n_bins)
    return time_to_bin(table.times, edges), edges
