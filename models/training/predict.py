"""Slide-level predictions of a trained model over bags on disk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from slidescope.models.features import FeatureBags
from slidescope.models.mil.base import MILModel


@torch.no_grad()
def predict_logits(
    model: MILModel,
    bags: FeatureBags,
    rows: Sequence[int] | np.ndarray,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """(len(rows), C) float64 logits of the whole bags, the model in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        logits = [
            model(bags[int(r)].to(device)).logits.reshape(-1).double().cpu().numpy() for r in rows
        ]
    finally:
        model.train(was_training)
    if not logits:
        return np.zeros((0, model.n_classes))
    return np.stack(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, C) logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def survival_risk_np(logits: np.ndarray) -> np.ndarray:
    """Risk of discrete-time hazard logits: minus the summed survival curve."""
    hazards = 1.0 / (1.0 + np.exp(-logits))
    return -np.cumprod(1.0 - hazards, axis=1).sum(axis=1)
