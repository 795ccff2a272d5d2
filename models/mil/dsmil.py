"""DSMIL: dual-stream MIL (Li, Li and Eliceiri, 2021).

Instance stream: an instance classifier scores every instance; the top-scoring instance
of each class is that class's *critical instance*. Bag stream: every instance attends to
each critical instance, ``A_ic = softmax_i(<q_i, q_crit(c)> / sqrt(d))``, and the bag
embedding is ``B_c = sum_i A_ic v_i`` — one row per class — read by a class-wise linear
classifier (DSMIL's ``Conv1d(C, C, kernel_size=H)``).

What this module reports, given one ``attention`` per instance and one bag feature:

* ``attention``: the bag stream's critical-instance attention, its class columns averaged
  with the predicted class probabilities as weights, ``sum_c p_c A[:, c]`` (held fixed for
  the gradient) — for a confident bag, the attention of the class it predicts;
* ``bag_feature``: ``B`` flattened, shape ``(C * H,)`` (what the classifier reads; note it
  is C times the hidden size, ``model.bag_dim``);
* ``instance_probs``: the bag classifier decomposed over instances —
  ``softmax_c(sum_k W[c, k] · A_ik v_i + b_c)``, i.e. ``W_cls · a_i h_i`` with the
  class-wise attention, which sums over ``i`` to exactly the bag logits minus bias;
* :meth:`DSMIL.instance_loss`: DSMIL's max-instance loss (cross-entropy of the instance
  classifier's max-pooled logits), added by the trainer with ``instance_loss_weight``
  beside ``bag_loss_weight`` times the bag loss (1.0 and 1.0 by default: DSMIL weighs
  its bag and max-instance losses equally).

How the prediction combines the two streams (``fusion``):

* ``none``: the bag stream's logits;
* ``logits``: ``0.5 * (bag + max-instance)`` logits, trained as one (the journal
  version of MHIM-MIL trains ``CE(0.5 * (bag + max))`` alone: ``instance_loss_weight``
  0);
* ``probabilities``: ``0.5 * softmax(bag) + 0.5 * softmax(max-instance)``, reported as
  its logarithm so that ``softmax(logits)`` is that mean; each stream trains on its own
  cross-entropy (the ICCV reference: ``0.5 * CE(bag) + 0.5 * CE(max)``, both weights 0.5).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from slidescope.models.mil.abmil import instance_embedding
from slidescope.models.mil.base import (
    MILModel,
    MILOutput,
    ModelSettingError,
    check_choice,
    check_size,
    join_tokens,
    require_instances,
)
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn
from torch.nn import functional as F

#: how the prediction combines the bag and max-instance streams (module docstring)
FUSIONS = ("none", "logits", "probabilities")


class DSMIL(MILModel):
    """Dual-stream MIL with an instance classifier and critical-instance attention.

    Parameters
    ----------
    in_dim : int
        Feature dimension D.
    n_classes : int
        Number of classes C.
    hidden_dim : int
        Size H of the hidden instances.
    q_dim : int
        Size of the query space of the bag stream (DSMIL: 128).
    dropout : float
        Dropout after the instance embedding.
    passing_v : bool
        Pass the instances through a linear value map before pooling (DSMIL's option;
        off by default as in DSMIL).
    act : str
        ``"relu"`` or ``"gelu"``.
    fusion : str
        How the prediction combines the bag and max-instance streams: ``none``,
        ``logits`` or ``probabilities`` (see the module docstring).
    bag_loss_weight, instance_loss_weight : float
        Weights of the bag stream's cross-entropy and of :meth:`instance_loss`.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden_dim: int = 512,
        q_dim: int = 128,
        dropout: float = 0.25,
        passing_v: bool = False,
        act: str = "relu",
        fusion: str = "none",
        bag_loss_weight: float = 1.0,
        instance_loss_weight: float = 1.0,
    ) -> None:
        super().__init__(in_dim, n_classes, hidden_dim)
        check_size("q_dim", q_dim)
        check_choice("fusion", fusion, FUSIONS)
        for name, weight in (
            ("bag_loss_weight", bag_loss_weight),
            ("instance_loss_weight", instance_loss_weight),
        ):
            if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
                raise ModelSettingError(f"{name} must be a number >= 0, got {weight!r}")
        self.fusion = fusion
        self.bag_loss_weight = float(bag_loss_weight)
        self.instance_loss_weight = float(instance_loss_weight)
        self.embedding = instance_embedding(in_dim, hidden_dim, dropout, act)
        self.instance_classifier = nn.Linear(hidden_dim, n_classes)
        self.query = nn.Sequential(
            nn.Linear(hidden_dim, q_dim), nn.ReLU(), nn.Linear(q_dim, q_dim), nn.Tanh()
        )
        # DSMIL's passing_v: a value map Linear + ReLU (the reference's ``nn.Sequential(
        # nn.Dropout(0), nn.Linear(H, H), nn.ReLU())``).
        self.value: nn.Module = (
            nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU())
            if passing_v
            else nn.Identity()
        )
        self.classifier = nn.Conv1d(n_classes, n_classes, kernel_size=hidden_dim)
        self.bag_dim = n_classes * hidden_dim

    def embed_hidden(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        require_instances(h, self.arch or "dsmil")
        n = h.shape[0]
        everything = join_tokens(h, tokens)
        # Critical instances are chosen among the real instances only: the global tokens
        # are summaries of masked instances, not candidates for "the" evidence.
        instance_logits = self.instance_classifier(h)
        critical = instance_logits.argmax(dim=0)  # (C,)
        q = self.query(everything)  # (M, q)
        scores = q @ q[critical].T / math.sqrt(q.shape[1])  # (M, C)
        weights = torch.softmax(scores, dim=0)
        v = self.value(everything)  # (M, H)
        bag = weights.T @ v  # (C, H)
        bag_logits = self.classifier(bag.unsqueeze(0)).reshape(-1)  # (C,)
        max_logits = instance_logits.max(dim=0).values
        logits, trained = bag_logits, None
        if self.fusion == "logits":
            logits = 0.5 * (bag_logits + max_logits)
        elif self.fusion == "probabilities":
            # log(0.5 softmax(bag) + 0.5 softmax(max)): its softmax is the mean itself
            both = torch.stack([F.log_softmax(bag_logits, 0), F.log_softmax(max_logits, 0)])
            logits, trained = torch.logsumexp(both, dim=0) - math.log(2.0), bag_logits

        # Per-instance share of the class-wise classifier: W (C, C, H) applied to A_ik v_i.
        kernel = self.classifier.weight  # (C_out, C_in, H)
        c = self.n_classes
        per_pair = (v[:n] @ kernel.reshape(c * c, -1).T).reshape(n, c, c)  # (N, C_out, C_in)
        contribution = (per_pair * weights[:n, None, :]).sum(dim=2) + self.classifier.bias
        # One attention per instance: the class columns mixed by the predicted class
        # probabilities (held fixed), so a confident bag shows its class's attention.
        attention = weights[:n] @ torch.softmax(logits.detach(), dim=0)
        if everything.shape[0] != n:
            attention = attention / attention.sum().clamp_min(torch.finfo(h.dtype).tiny)
        return MILOutput(
            logits=logits,
            attention=attention,
            bag_feature=bag.reshape(-1),
            instance_probs=torch.softmax(contribution, dim=-1),
            bag_logits=trained,
        )

    def instance_loss(self, h: Tensor, attention: Tensor, label: Tensor | int) -> Tensor:
        """DSMIL's max-instance loss: cross-entropy of the max-pooled instance logits.

        Parameters
        ----------
        h : Tensor
            (N, H) hidden instances.
        attention : Tensor
            (N,) attention (unused; the signature is shared with CLAM-SB).
        label : Tensor or int
            The bag's class.

        Returns
        -------
        Tensor
            Scalar loss.
        """
        del attention
        max_logits = self.instance_classifier(h).max(dim=0).values
        target = torch.as_tensor([int(label)], device=h.device)
        return F.cross_entropy(max_logits[None], target)


@register_model("dsmil")
def dsmil(in_dim: int, n_classes: int, **kwargs: Any) -> DSMIL:
    """DSMIL with critical-instance attention."""
    return DSMIL(in_dim, n_classes, **kwargs)
