"""CLAM-SB: single-branch clustering-constrained attention MIL (Lu et al., 2021).

The bag branch is gated-attention pooling (as :class:`~slidescope.models.mil.abmil.ABMIL`
with ``gated=True``); its attention is the model's ``attention``. On top, one binary
instance classifier per class learns to separate the ``k`` most attended instances of a
bag (pseudo-label "this class") from the ``k`` least attended ones (pseudo-label "not this
class"): :meth:`CLAMSB.instance_loss`. The trainer adds it to the bag loss as
``loss = bag_loss + instance_loss_weight * instance_loss`` with ``instance_loss_weight``
0.3/0.7 ≈ 0.43, the ratio of CLAM's ``bag_weight`` 0.7 to its instance weight 0.3.
"""

from __future__ import annotations

from typing import Any

import torch
from slidescope.models.mil.abmil import ABMIL
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn
from torch.nn import functional as F


class CLAMSB(ABMIL):
    """CLAM, single attention branch.

    Parameters
    ----------
    in_dim : int
        Feature dimension D.
    n_classes : int
        Number of classes C.
    hidden_dim : int
        Size H of the hidden instances (CLAM's "small" size is 512).
    attention_dim : int
        Hidden size of the gated attention network (default H / 2, CLAM's 256).
    dropout : float
        Dropout after the embedding and in the attention network.
    k_sample : int
        Instances taken from each end of the attention ranking for the instance loss
        (CLAM's default 8; fewer when the bag is small).
    subtyping : bool
        Also teach the other classes' instance classifiers that the top-``k`` instances
        are "not this class" (CLAM's setting for mutually exclusive subtypes).
    act : str
        ``"relu"`` or ``"gelu"``.
    """

    #: weight of :meth:`instance_loss` beside the bag cross-entropy (CLAM: 0.3 vs 0.7)
    instance_loss_weight: float = 0.3 / 0.7

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden_dim: int = 512,
        attention_dim: int | None = None,
        dropout: float = 0.25,
        k_sample: int = 8,
        subtyping: bool = False,
        act: str = "relu",
    ) -> None:
        super().__init__(
            in_dim,
            n_classes,
            hidden_dim=hidden_dim,
            attention_dim=attention_dim,
            gated=True,
            dropout=dropout,
            act=act,
        )
        self.k_sample = k_sample
        self.subtyping = subtyping
        self.instance_classifiers = nn.ModuleList(
            nn.Linear(hidden_dim, 2) for _ in range(n_classes)
        )

    def instance_loss(self, h: Tensor, attention: Tensor, label: Tensor | int) -> Tensor:
        """CLAM's instance-level clustering loss for one bag.

        Parameters
        ----------
        h : Tensor
            (N, H) hidden instances (the ones the attention was computed on).
        attention : Tensor
            (N,) their attention.
        label : Tensor or int
            The bag's class.

        Returns
        -------
        Tensor
            Scalar loss (zero for a bag too small to sample from: N < 2).
        """
        label = int(label)
        k = min(self.k_sample, h.shape[0] // 2)
        if k == 0:
            return h.sum() * 0.0
        # The ranking only chooses pseudo-labels; gradients reach the instance classifier
        # and the embedding, as in CLAM.
        order = torch.argsort(attention.detach(), descending=True)
        top, bottom = h[order[:k]], h[order[-k:]]
        losses = []
        for c, classifier in enumerate(self.instance_classifiers):
            if c == label:
                inputs = torch.cat([top, bottom])
                targets = torch.cat([torch.ones(k), torch.zeros(k)]).long().to(h.device)
            elif self.subtyping:
                inputs = top
                targets = torch.zeros(k, dtype=torch.long, device=h.device)
            else:
                continue
            losses.append(F.cross_entropy(classifier(inputs), targets))
        return torch.stack(losses).mean()


@register_model("clam_sb")
def clam_sb(in_dim: int, n_classes: int, **kwargs: Any) -> CLAMSB:
    """CLAM-SB with gated attention and per-class instance classifiers."""
    return CLAMSB(in_dim, n_classes, **kwargs)
