"""The losses of MIL training beyond cross-entropy: consistency, AEM, survival NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def consistency_loss(
    student_feature: Tensor,
    teacher_feature: Tensor,
    teacher_temperature: float = 0.1,
    student_temperature: float = 1.0,
) -> Tensor:
    """Soft-target cross-entropy between the teacher's and the student's bag features.

    ``-sum_j softmax(t / tau_t)_j * log_softmax(s / tau_s)_j`` over the H channels; the
    teacher side is detached (it is a target). Batched inputs (..., H) are averaged.
    """
    target = F.softmax(teacher_feature.detach() / teacher_temperature, dim=-1)
    log_student = F.log_softmax(student_feature / student_temperature, dim=-1)
    return -(target * log_student).sum(dim=-1).mean()


def attention_entropy(attention: Tensor, eps: float = 1e-12) -> Tensor:
    """Entropy ``-sum_i a_i log a_i`` of one bag's N attention values.

    The values are renormalised to sum to one (pooling baselines report unnormalised
    contributions); AEM subtracts ``lambda * entropy`` from the loss.
    """
    weights = attention.flatten().clamp_min(0)
    weights = weights / weights.sum().clamp_min(eps)
    return -(weights * torch.log(weights.clamp_min(eps))).sum()


def survival_nll(
    hazard_logits: Tensor, time_bin: Tensor, event: Tensor, alpha: float = 0.0, eps: float = 1e-7
) -> Tensor:
    """Negative log-likelihood of discrete-time hazards (Zadeh & Schmid, 2020).

    With hazards ``h_j = sigmoid(logit_j)`` and survival ``S_j = prod_{i<=j} (1 - h_i)``
    (``S_{-1} = 1``), a slide whose event happened in bin y contributes
    ``-log S_{y-1} - log h_y`` and a censored one ``-log S_y``. The loss is
    ``(1 - alpha) * all + alpha * uncensored-only``, averaged over the batch.

    Parameters
    ----------
    hazard_logits : Tensor
        (B, K) or (K,) logits.
    time_bin : Tensor
        (B,) or () bin index y.
    event : Tensor
        (B,) or () 1 for an observed event, 0 for censored.
    alpha : float
    """
    logits = hazard_logits.reshape(-1, hazard_logits.shape[-1])
    y = time_bin.reshape(-1, 1).long()
    observed = event.reshape(-1, 1).to(logits.dtype)
    hazards = torch.sigmoid(logits)
    survival = torch.cumprod(1.0 - hazards, dim=1)
    survival_padded = torch.cat([torch.ones_like(survival[:, :1]), survival], dim=1)
    s_before = torch.gather(survival_padded, 1, y).clamp_min(eps)
    s_at = torch.gather(survival_padded, 1, y + 1).clamp_min(eps)
    h_at = torch.gather(hazards, 1, y).clamp_min(eps)
    uncensored = -observed * (torch.log(s_before) + torch.log(h_at))
    censored = -(1.0 - observed) * torch.log(s_at)
    total = censored + uncensored
    return ((1.0 - alpha) * total + alpha * uncensored).mean()


def survival_risk(hazard_logits: Tensor) -> Tensor:
    """Risk score of discrete-time hazards: minus the summed survival (higher = earlier)."""
    logits = hazard_logits.reshape(-1, hazard_logits.shape[-1])
    survival = torch.cumprod(1.0 - torch.sigmoid(logits), dim=1)
    return -survival.sum(dim=1)
