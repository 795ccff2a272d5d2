"""One prediction rule: a checkpoint's threshold, or the most probable class."""

from __future__ import annotations

import numpy as np
from slidescope.models.checkpoints import CheckpointMeta
from slidescope.models.prediction import decision_threshold, predict_label, predict_labels


def test_two_classes_use_the_threshold_chosen_on_validation() -> None:
    probs = np.array([[0.8, 0.2], [0.65, 0.35], [0.3, 0.7]])
    assert predict_labels(probs, None).tolist() == [0, 0, 1]  # 0.5: the most probable
    assert predict_labels(probs, 0.3).tolist() == [0, 1, 1]
    assert predict_labels(probs, 0.75).tolist() == [0, 0, 0]


def test_the_rule_is_read_from_checkpoint_metadata() -> None:
    meta = CheckpointMeta(architecture="abmil", in_dim=8, n_classes=2, threshold=0.3)
    assert predict_label(np.array([0.65, 0.35]), meta) == 1
    assert decision_threshold(meta.threshold, 2) == 0.3


def test_more_classes_take_the_most_probable_and_no_tissue_has_no_label() -> None:
    probs = np.array([[0.2, 0.5, 0.3], [np.nan, np.nan, np.nan]])
    assert predict_labels(probs, 0.1).tolist() == [1, -1]
    assert decision_threshold(0.1, 3) is None
    assert predict_label(probs[1], None) is None
