"""A tiny base checkpoint and annotated synthetic bags, for the fine-tuning tests.

Positive bags ("lesion", class 0) hide a few planted instances shifted along a direction
the base model never saw; the planted instances carry the patch label 0, the others 1
("normal"), so a test can tell whether fine-tuning learnt where the evidence is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from slidescope.models.checkpoints import CheckpointMeta, save_checkpoint
from slidescope.models.mil.registry import create_model
from slidescope.models.training.finetune import FinetuneBag
from training_bags import write_feature_file

DIM = 16
CLASSES = ["lesion", "normal"]


def make_base(path: Path, seed: int = 0) -> Path:
    """An untrained-but-valid ABMIL checkpoint on ``synthetic`` features."""
    torch.manual_seed(seed)
    model = create_model("abmil", DIM, 2, hidden_dim=32)
    meta = CheckpointMeta.for_model(
        model, class_names=list(CLASSES), extractor="synthetic", patch_size=256,
        target_mpp=0.5, training={"method": "plain"},
    )  # fmt: skip
    return save_checkpoint(path, model, meta)


def make_bags(folder: Path, n_bags: int = 8, n: int = 60, seed: int = 1) -> list[FinetuneBag]:
    """``n_bags`` bags, half lesion; planted instances labelled, the rest labelled normal."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    direction = np.zeros(DIM, np.float32)
    direction[3] = 1.0
    bags = []
    for i in range(n_bags):
        x = rng.standard_normal((n, DIM)).astype(np.float32)
        label = 0 if i % 2 == 0 else 1
        patch = np.ones(n, np.int64)
        if label == 0:
            planted = rng.choice(n, size=6, replace=False)
            x[planted] += 4.0 * direction
            patch[planted] = 0
        path = write_feature_file(folder / f"bag{i}.h5", x)
        bags.append(FinetuneBag(f"bag{i}", path, label, instance_labels=patch))
    return bags
