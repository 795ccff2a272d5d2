"""Which instances MHIM hides from the student: high-score, low-score and random masks.

Counts, for a bag of N instances (every count rounds UP, as the reference code does):

- high-score: ``n_h = ceil(N * r_h)`` instances, drawn at random from the top
  ``n_top = min(N, ceil(N * r_h / r_hr))`` teacher scores (``r_hr = 1``: exactly the top
  ``n_h``);
- low-score: the ``ceil(N * r_l)`` lowest scores;
- random: ``ceil(N * r_r)`` instances drawn uniformly from all N.

A ratio of 0 masks nothing. The masks combine by union. So that the student always sees
something, when the union would cover the whole bag one instance is kept: a randomly
masked one if there is any, else the one with the median score.

With the global recycle network (the journal version) nothing but the score-masked
instances is discarded. The ``recycled`` set it summarises holds the instances masked at
random and by no score mask, and, with ``merge_ratio < 1``, the *merge split*: of the L
instances every mask left, ``floor(L * merge_ratio)`` (at least one) stay instances and
the others, drawn at random, are recycled (the journal's ``Merge.masking``, which keeps
``int(L * merge_ratio)``). Salient (high-score) instances are never recycled — hiding
them is the point of MHIM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Masking:
    """The outcome of masking one bag (all index tensors sorted, int64).

    Attributes
    ----------
    keep : Tensor
        Instances the student sees.
    high, low, random : Tensor
        Instances masked by each rule (they may overlap before the union).
    merged : Tensor
        Instances no mask took that the merge split sends to the recycle network.
    recycled : Tensor
        Input of the recycle network: masked at random and by no score rule, and the
        merged instances.
    """

    keep: Tensor
    high: Tensor
    low: Tensor
    random: Tensor
    merged: Tensor
    recycled: Tensor

    @property
    def masked(self) -> Tensor:
        """The union of the masks, minus any instance kept by the keep-one rule."""
        union = torch.cat([self.high, self.low, self.random]).unique()
        return union[~torch.isin(union, self.keep)]


def ceil_count(n: int, ratio: float) -> int:
    """``ceil(n * ratio)`` clipped to [0, n], robust to float error (0.3 * 10 = 3.0000000004)."""
    if ratio <= 0 or n <= 0:
        return 0
    return min(n, math.ceil(round(n * ratio, 9)))


def floor_count(n: int, ratio: float) -> int:
    """``floor(n * ratio)`` clipped to [0, n], robust to float error (0.29 * 100 = 28.999...)."""
    if ratio <= 0 or n <= 0:
        return 0
    return min(n, math.floor(round(n * ratio, 9)))


def high_score_count(n: int, ratio: float, random_share: float = 1.0) -> tuple[int, int]:
    """(masked, top set size) of high-score masking for ``n`` instances."""
    masked = ceil_count(n, ratio)
    if masked == 0:
        return 0, 0
    top = min(n, math.ceil(round(n * ratio / random_share, 9)))
    return min(masked, top), top


def high_score_mask(
    scores: Tensor,
    ratio: float,
    random_share: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Indices of a random ``random_share`` draw from the top-scoring instances.

    Parameters
    ----------
    scores : Tensor
        (N,) teacher scores.
    ratio : float
        r_h.
    random_share : float
        r_hr in (0, 1].
    generator : torch.Generator, optional
        Source of randomness (seeded training).
    """
    n = scores.numel()
    masked, top = high_score_count(n, ratio, random_share)
    if masked == 0:
        return torch.zeros(0, dtype=torch.long)
    top_idx = torch.topk(scores.detach().float().cpu(), top, largest=True).indices
    if masked < top:
        top_idx = top_idx[torch.randperm(top, generator=generator)[:masked]]
    return top_idx.sort().values


def low_score_mask(scores: Tensor, ratio: float) -> Tensor:
    """Indices of the ``ceil(N * ratio)`` lowest-scoring instances."""
    k = ceil_count(scores.numel(), ratio)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.topk(scores.detach().float().cpu(), k, largest=False).indices.sort().values


def random_mask(n: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Indices of ``ceil(n * ratio)`` instances drawn uniformly without replacement."""
    k = ceil_count(n, ratio)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.randperm(n, generator=generator)[:k].sort().values


def mask_bag(
    scores: Tensor,
    ratio_high: float,
    ratio_high_random: float = 1.0,
    ratio_low: float = 0.0,
    ratio_random: float = 0.0,
    generator: torch.Generator | None = None,
    merge_ratio: float = 1.0,
) -> Masking:
    """Mask one bag: the union of high-score, low-score and random masks.

    Parameters
    ----------
    scores : Tensor
        (N,) teacher scores of the instances.
    ratio_high, ratio_high_random, ratio_low, ratio_random : float
        r_h, r_hr, r_l, r_r (see the module docstring for the exact counts).
    generator : torch.Generator, optional
        Source of randomness.
    merge_ratio : float
        With the recycle network only: share of the instances left by the masks that
        stay instances (1.0: no merge split).

    Returns
    -------
    Masking
    """
    n = scores.numel()
    high = high_score_mask(scores, ratio_high, ratio_high_random, generator)
    low = low_score_mask(scores, ratio_low)
    rand = random_mask(n, ratio_random, generator)
    masked = torch.zeros(n, dtype=torch.bool)
    masked[high] = True
    masked[low] = True
    masked[rand] = True
    if n > 0 and bool(masked.all()):
        by_score = torch.zeros(n, dtype=torch.bool)
        by_score[high] = True
        by_score[low] = True
        random_only = rand[~by_score[rand]]
        if random_only.numel():
            masked[random_only[0]] = False
        else:
            order = torch.argsort(scores.detach().float().cpu())
            masked[order[n // 2]] = False
    keep = torch.nonzero(~masked).flatten()
    merged = torch.zeros(0, dtype=torch.long)
    if merge_ratio < 1.0 and keep.numel() > 1:
        stay = max(1, floor_count(keep.numel(), merge_ratio))
        order = torch.randperm(keep.numel(), generator=generator)
        merged = keep[order[stay:]].sort().values
        keep = keep[order[:stay]].sort().values
    scored = torch.zeros(n, dtype=torch.bool)
    scored[high] = True
    scored[low] = True
    recycled_flags = torch.zeros(n, dtype=torch.bool)
    recycled_flags[rand] = True
    recycled_flags &= ~scored
    recycled_flags &= masked
    recycled_flags[merged] = True
    recycled = torch.nonzero(recycled_flags).flatten()
    return Masking(keep=keep, high=high, low=low, random=rand, merged=merged, recycled=recycled)


def cosine_schedule(start: float, end: float, total_steps: int) -> list[float]:
    """Values from ``start`` to ``end`` over ``total_steps`` steps along a half cosine.

    ``value[i] = end + (start - end) * (1 + cos(pi * i / total_steps)) / 2``, so step 0 is
    ``start`` and the value approaches ``end`` at the last step (as the reference
    ``cosine_scheduler`` without warm-up).
    """
    if total_steps <= 0:
        return []
    return [
        end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * i / total_steps))
        for i in range(total_steps)
    ]
