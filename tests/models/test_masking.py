"""MHIM masking: exact counts, union, random share of the top, low scores, schedules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from slidescope.models.training.masking import (
    ceil_count,
    cosine_schedule,
    floor_count,
    high_score_count,
    high_score_mask,
    low_score_mask,
    mask_bag,
    random_mask,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        (100, 0.01, 1),
        (100, 0.3, 30),
        (10, 0.3, 3),
        (7, 0.5, 4),
        (1, 0.6, 1),
        (5, 0.0, 0),
        (0, 0.5, 0),
    ],
)
def test_ceil_count(n: int, ratio: float, expected: int) -> None:
    assert ceil_count(n, ratio) == expected


def test_high_score_mask_exact_top_without_random_share() -> None:
    scores = torch.arange(50, dtype=torch.float32)
    masked = high_score_mask(scores, 0.1, 1.0)
    assert masked.tolist() == list(range(45, 50))


def test_high_score_mask_random_share_of_top() -> None:
    scores = torch.randperm(200).float()
    n_masked, top = high_score_count(200, 0.05, 0.5)
    assert (n_masked, top) == (10, 20)
    top_set = set(torch.topk(scores, 20).indices.tolist())
    draws = set()
    for seed in range(5):
        masked = high_score_mask(scores, 0.05, 0.5, _gen(seed))
        assert masked.numel() == 10
        assert set(masked.tolist()) <= top_set
        draws.add(tuple(masked.tolist()))
    assert len(draws) > 1  # the share really is drawn at random


def test_high_score_top_set_capped_at_n() -> None:
    assert high_score_count(10, 0.5, 0.2) == (5, 10)


def test_low_score_mask_picks_lowest() -> None:
    scores = torch.tensor([5.0, 0.1, 3.0, 0.2, 9.0, 0.0])
    assert low_score_mask(scores, 0.5).tolist() == [1, 3, 5]


def test_random_mask_count_and_uniqueness() -> None:
    masked = random_mask(101, 0.6, _gen())
    assert masked.numel() == math.ceil(101 * 0.6)
    assert masked.unique().numel() == masked.numel()


def test_mask_bag_union_and_recycled() -> None:
    scores = torch.rand(300, generator=_gen(3))
    result = mask_bag(scores, 0.02, 1.0, 0.1, 0.5, _gen(4))
    union = set(result.high.tolist()) | set(result.low.tolist()) | set(result.random.tolist())
    assert set(result.keep.tolist()) == set(range(300)) - union
    assert result.masked.numel() == len(union)
    scored = set(result.high.tolist()) | set(result.low.tolist())
    assert set(result.recycled.tolist()) == set(result.random.tolist()) - scored
    assert result.high.numel() == 6
    assert result.low.numel() == 30
    assert result.random.numel() == 150


def test_mask_bag_ratios_zero_keeps_everything() -> None:
    result = mask_bag(torch.rand(20), 0.0, 1.0, 0.0, 0.0)
    assert result.keep.tolist() == list(range(20))
    assert result.recycled.numel() == 0


def test_mask_bag_single_instance_keeps_it() -> None:
    result = mask_bag(torch.tensor([0.7]), 0.5, 0.5, 0.3, 0.6, _gen())
    assert result.keep.tolist() == [0]


def test_mask_bag_never_masks_whole_bag() -> None:
    result = mask_bag(torch.rand(4), 0.5, 1.0, 0.5, 0.9, _gen())
    assert result.keep.numel() >= 1


@pytest.mark.parametrize(("ratio_random", "merge_ratio"), [(0.0, 0.8), (0.0, 0.9), (0.3, 0.8)])
def test_merge_split_discards_nothing(ratio_random: float, merge_ratio: float) -> None:
    """The journal's merge split (``m:modules/mhim_modules/merge.py:158-176``): of the L
    instances the masks leave, ``int(L * merge_ratio)`` stay and the rest are recycled;
    only the score masks discard."""
    n = 257
    scores = torch.rand(n, generator=_gen(5))
    result = mask_bag(scores, 0.03, 0.5, 0.1, ratio_random, _gen(6), merge_ratio=merge_ratio)
    scored = set(result.high.tolist()) | set(result.low.tolist())
    keep, recycled = set(result.keep.tolist()), set(result.recycled.tolist())
    assert keep | recycled | scored == set(range(n))
    assert not keep & recycled
    assert not keep & scored
    assert not recycled & scored
    left = n - len(scored | set(result.random.tolist()))
    assert result.keep.numel() == int(left * merge_ratio)
    assert result.merged.numel() == left - result.keep.numel()
    assert recycled == set(result.merged.tolist()) | (set(result.random.tolist()) - scored)


def test_merge_ratio_one_leaves_the_masks_as_they_were() -> None:
    scores = torch.rand(100, generator=_gen(7))
    split = mask_bag(scores, 0.02, 0.5, 0.0, 0.6, _gen(8), merge_ratio=1.0)
    plain = mask_bag(scores, 0.02, 0.5, 0.0, 0.6, _gen(8))
    assert split.merged.numel() == 0
    assert torch.equal(split.keep, plain.keep)
    assert torch.equal(split.recycled, plain.recycled)


def test_merge_split_keeps_one_instance() -> None:
    result = mask_bag(torch.rand(3), 0.0, 1.0, 0.0, 0.0, _gen(), merge_ratio=0.1)
    assert result.keep.numel() == 1  # int(3 * 0.1) = 0 would leave the student nothing
    assert result.merged.numel() == 2


def test_floor_count_is_robust_to_float_error() -> None:
    assert floor_count(100, 0.29) == 29  # 100 * 0.29 = 28.999999999999996
    assert floor_count(35, 0.8) == 28
    assert floor_count(10, 0.0) == 0


def test_cosine_schedule_values() -> None:
    values = cosine_schedule(0.01, 0.0, 4)
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * i / 4)) for i in range(4)]
    assert values == pytest.approx(expected)
    assert values[0] == pytest.approx(0.01)
    assert values[2] == pytest.approx(0.005)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert cosine_schedule(1.0, 0.0, 0) == []
