"""Instance max: an mi-Net-style model that keeps the standard MIL assumption by construction.

The standard MIL assumption says a bag is positive if and only if it holds at least one
positive instance. Attention models (ABMIL, TransMIL, CLAM, DSMIL's bag stream) can break
it: a softmax over instances lets an instance *lower* the bag's positive score, so they
can learn "this negative-looking instance is present, so the bag is negative", or rely on
how many instances of a kind a bag holds (Raff & Holt, NeurIPS 2023).

Here each instance gets its own evidence score for every non-reference class,
``s_ic = w_c^T f(x_i) + b_c`` (c = 1 .. C-1), and the bag logit of class c is the maximum
over instances, ``max_i s_ic``; class 0 (the negative / reference class) has the constant
logit 0. So:

* the bag's positive score is the score of its most positive instance — adding instances
  can raise it, never lower it;
* counts and frequencies do not matter: one witness makes a bag as positive as ten;
* instances can only give positive evidence; there is no "negative-indicative" instance.

For two classes this is Wang et al.'s mi-Net (2018) with max pooling. With more classes,
class 0 must be the "nothing found" class (e.g. ``normal``) — the classes are sorted, so
name it to sort first (``0``, ``a_normal``) if needed.

Outputs: ``attention`` is ``softmax_i(max_c s_ic)`` (the instances that drive the bag
score), ``instance_probs`` the per-instance ``softmax([0, s_i1, ..])``, ``bag_feature``
the attention-weighted hidden instances.
"""

from __future__ import annotations

from typing import Any

import torch
from slidescope.models.mil.abmil import instance_embedding
from slidescope.models.mil.base import (
    MILModel,
    MILOutput,
    join_tokens,
    real_attention,
    require_instances,
)
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn


class InstanceMaxMIL(MILModel):
    """Per-instance evidence scores, max-pooled into the bag logits.

    Parameters
    ----------
    in_dim : int
        Feature dimension D.
    n_classes : int
        Number of classes C (class 0 is the reference, "no evidence" class).
    hidden_dim : int
        Size H of the hidden instances.
    dropout : float
        Dropout after the instance embedding.
    act : str
        ``"relu"`` or ``"gelu"``.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden_dim: int = 512,
        dropout: float = 0.25,
        act: str = "relu",
    ) -> None:
        super().__init__(in_dim, n_classes, hidden_dim)
        if n_classes < 2:
            raise ValueError(f"instance_max needs at least two classes, got {n_classes}")
        self.embedding = instance_embedding(in_dim, hidden_dim, dropout, act)
        self.evidence = nn.Linear(hidden_dim, n_classes - 1)

    def embed_hidden(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    def instance_logits(self, h: Tensor) -> Tensor:
        """(N, C) per-instance logits ``[0, s_i1, ..., s_i(C-1)]``."""
        scores = self.evidence(h)
        return torch.cat([scores.new_zeros(scores.shape[0], 1), scores], dim=1)

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        require_instances(h, self.arch or "instance_max")
        n = h.shape[0]
        everything = join_tokens(h, tokens)
        logits_i = self.instance_logits(everything)
        # The reference column is constant 0, so the max over instances keeps it 0.
        logits = logits_i.max(dim=0).values
        weights = torch.softmax(logits_i[:, 1:].max(dim=1).values, dim=0)
        return MILOutput(
            logits=logits,
            attention=real_attention(weights[:n], tokens),
            bag_feature=weights @ everything,
            instance_probs=torch.softmax(logits_i[:n], dim=-1),
        )


@register_model("instance_max")
def instance_max(in_dim: int, n_classes: int, **kwargs: Any) -> InstanceMaxMIL:
    """mi-Net: instance evidence scores max-pooled; respects the standard MIL assumption."""
    return InstanceMaxMIL(in_dim, n_classes, **kwargs)
