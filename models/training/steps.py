"""The loss of one training bag: plain MIL, or MHIM with teacher, masking and recycling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from slidescope.models.mil.base import MILModel, MILOutput
from slidescope.models.training.config import MHIMConfig
from slidescope.models.training.losses import attention_entropy, consistency_loss, survival_nll
from slidescope.models.training.masking import mask_bag
from slidescope.models.training.recycle import GlobalRecycle
from torch import Tensor


@dataclass
class LossSettings:
    """What every bag's loss needs besides the bag.

    Attributes
    ----------
    task : str
        ``classification`` or ``survival``.
    class_weights : Tensor or None
        (C,) per-class weight of the cross-entropy.
    aem : float
        lambda of attention entropy maximisation.
    survival_alpha : float
        alpha of the survival NLL.
    """

    task: str = "classification"
    class_weights: Tensor | None = None
    aem: float = 0.0
    survival_alpha: float = 0.0


@dataclass
class BagTarget:
    """The label of one bag: a class index, or a time bin with its event flag."""

    label: int
    event: int = 1


def supervised_loss(logits: Tensor, target: BagTarget, settings: LossSettings) -> Tensor:
    """Class-weighted cross-entropy, or the survival NLL, of one bag's logits."""
    if settings.task == "survival":
        return survival_nll(
            logits,
            torch.tensor(target.label, device=logits.device),
            torch.tensor(target.event, device=logits.device),
            alpha=settings.survival_alpha,
        )
    label = torch.tensor([target.label], device=logits.device)
    loss = F.cross_entropy(logits.reshape(1, -1), label)
    # With one bag per step, F.cross_entropy(weight=...) divides the weight back out;
    # the class weight must scale the loss itself.
    if settings.class_weights is not None:
        loss = loss * settings.class_weights[target.label]
    return loss


def _regularised(
    model: MILModel, h: Tensor, out: MILOutput, target: BagTarget, settings: LossSettings
) -> Tensor:
    # A model whose prediction fuses streams (DSMIL) may train its bag stream's own logits.
    logits = out.logits if out.bag_logits is None else out.bag_logits
    loss = float(getattr(model, "bag_loss_weight", 1.0)) * supervised_loss(
        logits, target, settings
    )
    instance_loss = getattr(model, "instance_loss", None)
    weight = float(getattr(model, "instance_loss_weight", 1.0))
    if callable(instance_loss) and weight > 0 and settings.task == "classification":
        loss = loss + weight * instance_loss(h, out.attention, target.label)
    if settings.aem > 0:
        loss = loss - settings.aem * attention_entropy(out.attention)
    return loss


def plain_step(
    model: MILModel, x: Tensor, target: BagTarget, settings: LossSettings
) -> tuple[Tensor, dict[str, float]]:
    """Loss of one bag seen whole."""
    h = model.embed(x)
    out = model.aggregate(h)
    loss = _regularised(model, h, out, target, settings)
    return loss, {"kept": float(x.shape[0])}


def teacher_scores(out: MILOutput, mask_score: str) -> Tensor:
    """Instance scores of the teacher: attention, or max-over-classes instance probability."""
    if mask_score == "cls_prob":
        return out.instance_probs.max(dim=1).values
    return out.attention


def mhim_step(
    model: MILModel,
    teacher: MILModel,
    recycle: GlobalRecycle | None,
    x: Tensor,
    target: BagTarget,
    settings: LossSettings,
    mhim: MHIMConfig,
    mask_ratio_high: float,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """Loss of one bag under masked hard instance mining.

    The teacher scores the whole bag; the salient (and optionally the least relevant)
    instances and a random share are masked; the student sees the rest, plus the
    recycle network's global tokens summarising the randomly masked instances and the
    merge split (``merge_ratio``); the loss is the supervised loss plus alpha times the
    consistency of the student's bag feature with the teacher's.
    """
    with torch.no_grad():
        # The teacher is kept in eval mode; ``teacher_mode="train"`` runs its forward with
        # dropout on, as a teacher module left in training mode does.
        teacher.train(mhim.teacher_mode == "train")
        teacher_hidden = teacher.embed(x)
        teacher_out = teacher.aggregate(teacher_hidden)
        teacher.eval()
    scores = teacher_scores(teacher_out, mhim.mask_score)
    masking = mask_bag(
        scores,
        ratio_high=mask_ratio_high,
        ratio_high_random=mhim.mask_ratio_high_random,
        ratio_low=mhim.mask_ratio_low,
        ratio_random=mhim.mask_ratio_random,
        generator=generator,
        merge_ratio=mhim.merge_ratio if recycle is not None else 1.0,
    )
    keep = masking.keep.to(x.device)
    recycled = masking.recycled.to(x.device)
    tokens = None
    if mhim.recycle_source == "student":
        # The paper's path: the student embeds every instance and the recycled ones
        # reach its embedding through the global tokens.
        h = model.embed(x)
        h_kept = h[keep]
        if recycle is not None and recycled.numel() > 0:
            tokens = recycle(h[recycled])
    else:
        # The student embeds only what it sees; the recycle network summarises the
        # teacher's hidden instances (an EMA of the student's), which are computed
        # anyway. This saves the student's forward and backward pass over the masked
        # majority of the bag.
        h_kept = model.embed(x[keep])
        if recycle is not None and recycled.numel() > 0:
            tokens = recycle(teacher_hidden[recycled])
    out = model.aggregate(h_kept, tokens=tokens)
    loss = _regularised(model, h_kept, out, target, settings)
    # One softmax per row of H channels, averaged over rows, as the reference: one row
    # for every model but DSMIL, whose bag feature holds one row per class.
    consistency = consistency_loss(
        out.bag_feature.reshape(-1, model.hidden_dim),
        teacher_out.bag_feature.reshape(-1, model.hidden_dim),
        teacher_temperature=mhim.teacher_temperature,
        student_temperature=mhim.student_temperature,
    )
    loss = loss + mhim.consistency_weight * consistency
    return loss, {
        "kept": float(keep.numel()),
        "masked_high": float(masking.high.numel()),
        "consistency": float(consistency.detach()),
    }
