"""The instance loss of fine-tuning: what the annotated patches of a bag teach the model.

A pathologist's region annotations label patches (``-1`` where a patch has no label). Two
terms use them:

- the patch's own class: cross-entropy of the classifier applied to the patch's hidden
  instance, ``W_cls h_i + b`` (for ABMIL the bag logit is the attention-weighted mean of
  exactly these, so they are the patch's contribution to the slide's prediction); models
  whose classifier does not read one hidden instance are supervised through their
  class-aware instance probability instead;
- where the model looks: on a bag whose annotations hold both evidence of the bag's class
  and patches of other classes, ``-log`` of the attention mass on the evidence, so that
  the attention (the heatmap) goes to the annotated lesion rather than elsewhere.

With a handful of annotated slides these thousands of patch labels, not the few slide
labels, are what make fine-tuning work.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from slidescope.models.mil.base import MILOutput
from torch import Tensor, nn

#: the instance label of a patch without one
UNLABELLED = -1


def instance_logits(model: nn.Module, h: Tensor) -> Tensor | None:
    """(N, C) class logits of each hidden instance on its own, or None when the model's
    classifier does not read a single hidden instance (then the instance probabilities
    are supervised instead)."""
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Linear) and classifier.in_features == h.shape[1]:
        return classifier(h)
    return None


def instance_class_weights(labels: list[np.ndarray], n_classes: int) -> Tensor:
    """Inverse-frequency weight of each class over every labelled patch of the training set.

    A lesion is a few dozen patches among thousands of normal ones: unweighted, the loss
    would be met by calling everything normal.
    """
    counts = np.zeros(n_classes, np.float64)
    for bag in labels:
        known = bag[bag >= 0]
        counts += np.bincount(known, minlength=n_classes)[:n_classes]
    total = counts.sum()
    weights = np.where(counts > 0, total / (n_classes * np.maximum(counts, 1.0)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def instance_loss(
    model: nn.Module,
    h: Tensor,
    out: MILOutput,
    labels: Tensor,
    bag_label: int,
    class_weights: Tensor | None = None,
) -> Tensor:
    """The instance loss of one bag (0 when none of its patches is labelled).

    Parameters
    ----------
    model : nn.Module
        The MIL model that produced ``h`` and ``out``.
    h : Tensor
        (N, H) hidden instances of the whole bag.
    out : MILOutput
        ``model.aggregate(h)``.
    labels : Tensor
        (N,) int64 class index per patch, :data:`UNLABELLED` where unknown.
    bag_label : int
        The slide's class index.
    class_weights : Tensor, optional
        (C,) weight per class of the patch cross-entropy.

    Returns
    -------
    Tensor
        A scalar.
    """
    labels = labels.to(h.device)
    labelled = labels >= 0
    if not bool(labelled.any()):
        return h.sum() * 0.0
    known = labels[labelled]
    weight = None if class_weights is None else class_weights.to(h.device)
    logits = instance_logits(model, h)
    if logits is not None:
        patch = F.cross_entropy(logits[labelled], known, weight=weight)
    else:
        log_probs = out.instance_probs[labelled].clamp_min(1e-8).log()
        patch = F.nll_loss(log_probs, known, weight=weight)
    evidence = labels == bag_label
    others = labelled & ~evidence
    if bool(evidence.any()) and bool(others.any()):
        mass = out.attention[evidence].sum().clamp_min(1e-8)
        patch = patch - mass.log()
    return patch
