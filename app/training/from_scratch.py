"""``train --annotations``: a new model learnt from labels and region annotations.

Training from scratch with annotations is fine-tuning from a freshly initialised model:
its input standardisation is fitted on the training features, its extractor and patch
geometry are the features', and the fine-tuning job does the rest (instance loss,
validation, resume, lineage).
"""

from __future__ import annotations

from pathlib import Path

import torch
from slidescope.models.checkpoints import CheckpointMeta, save_checkpoint
from slidescope.models.features import FeatureMoments, check_feature_set, read_feature_info
from slidescope.models.mil.registry import create_model
from slidescope.models.training.trainer import safe_std


def fresh_base(
    feature_files: list[Path],
    model_name: str,
    model_kwargs: dict[str, object],
    class_names: list[str],
    out: Path,
    seed: int = 0,
) -> Path:
    """Write an initialised (untrained) checkpoint fitted to ``feature_files``' scale."""
    reference = check_feature_set([read_feature_info(p) for p in feature_files])
    moments = FeatureMoments()
    for path in feature_files:
        moments.add_file(path)
    mean, std = moments.result()
    torch.manual_seed(seed)
    model = create_model(model_name, reference.feature_dim, len(class_names), **model_kwargs)
    model.set_standardisation(torch.from_numpy(mean), torch.from_numpy(safe_std(std)))
    meta = CheckpointMeta.for_model(
        model, class_names=list(class_names), extractor=reference.extractor,
        patch_size=reference.patch_size, target_mpp=reference.target_mpp,
        training={"method": "plain", "initialised_only": True},
    )  # fmt: skip
    return save_checkpoint(out, model, meta)
