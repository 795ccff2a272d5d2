"""``experience_distance``: a slide unlike the training slides is flagged, a like one is not."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.models.checkpoints import CheckpointMeta
from slidescope.models.ood import experience_distance, feature_stats


def _bags(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[np.ndarray]:
    return [rng.normal(size=(int(rng.integers(50, 150)), 24)) + 3.0 + shift for _ in range(n)]


@pytest.fixture
def stats() -> dict:
    rng = np.random.default_rng(0)
    train = _bags(rng, 40)
    everything = np.concatenate(train)
    return feature_stats(
        everything.mean(0), everything.var(0), np.stack([b.mean(0) for b in train])
    )


def test_like_slides_inside_and_shifted_slides_outside(stats) -> None:
    rng = np.random.default_rng(1)
    inside = [experience_distance(b, stats) for b in _bags(rng, 30)]
    assert sum(flag for _, flag, _ in inside) <= 1
    outside = [experience_distance(b, stats) for b in _bags(rng, 10, shift=1.0)]
    assert all(flag for _, flag, _ in outside)
    score, _flag, reason = outside[0]
    assert score > max(s for s, _, _ in inside)
    assert "never saw" in reason


def test_reads_checkpoint_metadata_and_handles_odd_input(stats) -> None:
    meta = CheckpointMeta("abmil", 24, 2, feature_stats=stats)
    bag = np.random.default_rng(2).normal(size=(80, 24)) + 3.0
    assert (
        experience_distance(bag, meta)[:2]
        == experience_distance(bag, {"feature_stats": stats})[:2]
    )
    assert np.isnan(experience_distance(bag, CheckpointMeta("abmil", 24, 2))[0])
    assert experience_distance(np.zeros((5, 7)), stats)[1]  # another dimension
    bad = bag.copy()
    bad[0, 0] = np.nan
    assert experience_distance(bad, stats)[1]
    assert not experience_distance(np.zeros((0, 24)), stats)[1]


def test_training_writes_feature_stats(tmp_path) -> None:
    from slidescope.models.checkpoints import read_meta
    from slidescope.models.jobs import run_job
    from slidescope.models.training.config import TrainingConfig
    from slidescope.models.training.trainer import train
    from training_bags import planted_bags

    folder, labels = planted_bags(tmp_path / "f", n_bags=12, n_instances=20, dim=8)
    config = TrainingConfig(
        features=folder, labels=labels, out=tmp_path / "m.safetensors", epochs=1,
        model_kwargs={"hidden_dim": 8},
    )  # fmt: skip
    meta = read_meta(run_job(train(config)).path)
    assert len(meta.feature_stats["slide_mean"]) == 8
    assert meta.feature_stats["n_slides"] == len(meta.training["train_slide_ids"])
    assert meta.feature_stats["distance_quantiles"]["max"] > 0
