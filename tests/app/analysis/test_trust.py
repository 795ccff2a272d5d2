"""The trust flag: a slide outside the model's experience says so, and why."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from slidescope.app.analysis.trust import Trust, assess_trust, magnification, training_slide_mpp


def meta(**training):
    return SimpleNamespace(target_mpp=0.5, patch_size=128, training=training, feature_stats=None)


def test_magnification_from_mpp():
    assert magnification(0.25) == 40
    assert magnification(0.5) == 20


def test_training_slides_resolution_from_the_patch_geometry():
    assert training_slide_mpp(meta(patch_size_level0=256)) == 0.25
    assert training_slide_mpp(meta()) is None


def test_a_20x_scan_for_a_40x_model_is_outside():
    trust = assess_trust(None, meta(patch_size_level0=256), 0.499)
    assert trust.is_outside
    assert "0.499 µm/px" in trust.headline
    assert trust.headline.startswith("outside this model's experience: ")


def test_the_same_resolution_is_inside_and_round_trips():
    trust = assess_trust(np.zeros((3, 4)), meta(patch_size_level0=256), 0.26)
    assert not trust.is_outside
    assert trust.headline == ""
    assert Trust.from_dict(trust.to_dict()) == trust


def test_coarser_than_the_models_patches_is_outside():
    trust = assess_trust(None, meta(), 1.0)
    assert trust.is_outside
    assert "coarser" in trust.reasons[0]


def test_features_far_from_the_training_features_are_outside():
    from slidescope.models.ood import feature_stats

    rng = np.random.default_rng(0)
    bags = rng.normal(0, 1, (20, 8)).mean(axis=1, keepdims=True) + rng.normal(0, 0.1, (20, 8))
    stats = feature_stats(np.zeros(8), np.ones(8), bags)
    model = SimpleNamespace(target_mpp=0.5, patch_size=128, training={}, feature_stats=stats)
    near = assess_trust(bags[:1] + rng.normal(0, 0.01, (5, 8)), model, 0.5)
    assert not near.is_outside
    assert near.distance is not None
    far = assess_trust(np.full((5, 8), 50.0), model, 0.5)
    assert far.is_outside
    assert far.distance > near.distance
    assert far.reasons
