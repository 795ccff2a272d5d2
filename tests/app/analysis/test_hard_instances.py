"""Hard instances: the salient set MHIM masks and the attention recomputed without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from slidescope.app.analysis.hard_instances import (
    hard_instances,
    salient_count,
    salient_mask,
)
from slidescope.models.mil.registry import create_model


@pytest.fixture
def bag() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(40, 16)


def test_salient_count_follows_mhim_and_keeps_one_patch() -> None:
    assert salient_count(100, 0.1) == 10
    assert salient_count(7, 0.5) == 3
    assert salient_count(3, 1.0) == 2
    assert salient_count(0, 0.5) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        salient_count(10, 1.5)


def test_salient_mask_takes_the_top_scores_ties_in_patch_order() -> None:
    mask = salient_mask(np.array([0.1, 0.9, 0.5, 0.9, 0.2]), 0.4)
    np.testing.assert_array_equal(mask, [False, True, False, True, False])
    tied = salient_mask(np.ones(4), 0.5)
    np.testing.assert_array_equal(tied, [True, True, False, False])


@pytest.mark.parametrize("arch", ["abmil", "abmil_gated", "transmil", "dsmil", "clam_sb"])
def test_attention_is_recomputed_on_the_unmasked_patches(arch: str, bag: torch.Tensor) -> None:
    torch.manual_seed(1)
    model = create_model(arch, 16, 2).eval()
    result = hard_instances(model, bag, 0.25)
    full = model(bag).attention.detach().numpy()
    assert result.masked.sum() == 10
    # the masked set is the top quarter of the model's own attention
    assert set(np.flatnonzero(result.masked)) == set(np.argsort(-full)[:10])
    assert (result.hard_attention[result.masked] == 0).all()
    with torch.no_grad():
        expected = model(bag[torch.from_numpy(~result.masked)]).attention.numpy()
    np.testing.assert_allclose(result.hard_attention[~result.masked], expected, rtol=1e-5)
    assert result.hard_attention.sum() == pytest.approx(1.0, abs=1e-4)


def test_probability_scores_and_a_teacher_choose_the_set(bag: torch.Tensor) -> None:
    torch.manual_seed(2)
    model = create_model("abmil", 16, 3).eval()
    teacher = create_model("abmil", 16, 3).eval()
    result = hard_instances(model, bag, 0.1, score="prob", scorer=teacher)
    with torch.no_grad():
        probs = teacher(bag).instance_probs.numpy().max(axis=1)
    np.testing.assert_allclose(result.scores, probs, rtol=1e-6)
    assert set(np.flatnonzero(result.masked)) == set(np.argsort(-probs)[:4])
    with pytest.raises(ValueError, match="unknown mask score"):
        hard_instances(model, bag, 0.1, score="entropy")


def test_empty_bag_and_zero_ratio(bag: torch.Tensor) -> None:
    model = create_model("abmil", 16, 2).eval()
    empty = hard_instances(model, bag[:0], 0.3)
    assert empty.masked.shape == (0,)
    none_masked = hard_instances(model, bag, 0.0)
    assert not none_masked.masked.any()
    with torch.no_grad():
        np.testing.assert_allclose(
            none_masked.hard_attention, model(bag).attention.numpy(), rtol=1e-5
        )
