"""MHIM at work on one slide: the salient patches it masks, and attention once they are hidden.

MHIM-MIL (DESIGN.md, "The science") trains the student on what remains once a teacher's
top-scoring ("salient", easy) patches are masked. On one slide, the same step shows where the
model's evidence lies beyond the obvious: the teacher (or the model itself) scores every
patch — by attention, or by the class-aware instance probability ``max_c p_ic`` — the top
``r_h`` share is masked, and the model's attention is recomputed on the rest
(``model(x[~masked])``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from slidescope.models.mil.base import MILModel, MILOutput

MaskScore = Literal["attention", "prob"]
MASK_SCORES: tuple[str, ...] = ("attention", "prob")


@dataclass(frozen=True)
class HardInstances:
    """The hard-instance view of one bag.

    Attributes
    ----------
    scores : ndarray
        (N,) the score that chose the salient set (attention or ``max_c`` probability).
    masked : ndarray
        (N,) bool, the salient set MHIM masks.
    hard_attention : ndarray
        (N,) the model's attention recomputed on the unmasked patches; 0 on masked ones.
    mask_ratio : float
        The share ``r_h`` asked for.
    """

    scores: np.ndarray
    masked: np.ndarray
    hard_attention: np.ndarray
    mask_ratio: float


def salient_count(n_patches: int, mask_ratio: float) -> int:
    """How many of ``n_patches`` the ratio masks: ``int(n * r)`` as in MHIM, leaving one."""
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1], got {mask_ratio}")
    return max(0, min(int(n_patches * mask_ratio), n_patches - 1))


def mask_scores(output: MILOutput, score: str = "attention") -> np.ndarray:
    """Per-patch scores of one forward pass: attention, or ``max_c`` instance probability."""
    if score not in MASK_SCORES:
        raise ValueError(f"unknown mask score {score!r}; choose one of {', '.join(MASK_SCORES)}")
    if score == "attention":
        return output.attention.detach().float().cpu().numpy().reshape(-1)
    probs = output.instance_probs.detach().float().cpu().numpy()
    return probs.max(axis=1) if probs.size else np.zeros(0, np.float32)


def salient_mask(scores: np.ndarray, mask_ratio: float) -> np.ndarray:
    """Boolean mask of the ``int(N * r)`` highest scores (ties broken by patch order)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    k = salient_count(scores.size, mask_ratio)
    masked = np.zeros(scores.size, dtype=bool)
    if k:
        # stable sort of the negated scores: equal scores keep patch order, so the set is
        # reproducible between runs and machines
        masked[np.argsort(-scores, kind="stable")[:k]] = True
    return masked


@torch.no_grad()
def hard_instances(
    model: MILModel,
    features: torch.Tensor,
    mask_ratio: float,
    *,
    score: str = "attention",
    scorer: MILModel | None = None,
    output: MILOutput | None = None,
) -> HardInstances:
    """Mask the salient patches of a bag and recompute the model's attention on the rest.

    Parameters
    ----------
    model : MILModel
        The model whose attention is recomputed (the student, used at inference).
    features : Tensor
        (N, D) the bag, on the model's device.
    mask_ratio : float
        ``r_h``: the share of patches masked as salient.
    score : {"attention", "prob"}
        What ranks the patches (the checkpoint's ``training.mask_score``).
    scorer : MILModel, optional
        Who ranks them: the saved teacher; the model itself by default.
    output : MILOutput, optional
        ``scorer``'s output on the full bag when already computed.

    Returns
    -------
    HardInstances
    """
    n = int(features.shape[0])
    if n == 0:
        empty = np.zeros(0, np.float32)
        return HardInstances(empty, np.zeros(0, bool), empty, mask_ratio)
    scorer = scorer if scorer is not None else model
    if output is None:
        output = scorer(features)
    scores = mask_scores(output, score).astype(np.float32)
    masked = salient_mask(scores, mask_ratio)
    hard = np.zeros(n, dtype=np.float32)
    keep = torch.from_numpy(~masked).to(features.device)
    hard[~masked] = model(features[keep]).attention.detach().float().cpu().numpy()
    return HardInstances(scores, masked, hard, mask_ratio)
