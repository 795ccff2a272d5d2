"""Pooling baselines: mean and max pooling of the hidden instances.

They have no attention network; their ``attention`` is a per-instance contribution score:

* mean pooling: uniform, ``1 / N`` (every instance contributes equally);
* max pooling: ``softmax_i(max_c logit_ic)`` where ``logit_i = W_cls h_i + b`` is the bag
  classifier applied to instance ``i`` alone — the instances whose own prediction is the
  most confident get the most weight.

``instance_probs`` follow ``softmax_c(W_cls · a_i h_i)``: with ``a_i = 1 / N`` for the mean,
and ``a_i = 1`` for the max (max pooling selects whole feature values, it does not scale them).
"""

from __future__ import annotations

from typing import Any

import torch
from slidescope.models.mil.abmil import instance_embedding
from slidescope.models.mil.base import (
    MILModel,
    MILOutput,
    instance_probabilities,
    join_tokens,
    require_instances,
)
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn


class PoolingMIL(MILModel):
    """Instance embedding, then mean or feature-wise max pooling, then a linear classifier.

    Parameters
    ----------
    in_dim : int
        Feature dimension D.
    n_classes : int
        Number of classes C.
    mode : str
        ``"mean"`` or ``"max"``.
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
        mode: str = "mean",
        hidden_dim: int = 512,
        dropout: float = 0.25,
        act: str = "relu",
    ) -> None:
        super().__init__(in_dim, n_classes, hidden_dim)
        if mode not in ("mean", "max"):
            raise ValueError(f"pooling mode must be 'mean' or 'max', got {mode!r}")
        self.mode = mode
        self.embedding = instance_embedding(in_dim, hidden_dim, dropout, act)
        self.classifier = nn.Linear(hidden_dim, n_classes)

    def embed_hidden(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        require_instances(h, self.arch or f"{self.mode}_pool")
        n = h.shape[0]
        everything = join_tokens(h, tokens)
        if self.mode == "mean":
            bag = everything.mean(dim=0)
            attention = torch.full((n,), 1.0 / n, dtype=h.dtype, device=h.device)
            probs = instance_probabilities(self.classifier, h / everything.shape[0])
        else:
            bag = everything.max(dim=0).values
            own_logits = self.classifier(h)
            attention = torch.softmax(own_logits.max(dim=1).values, dim=0)
            probs = torch.softmax(own_logits, dim=-1)
        return MILOutput(
            logits=self.classifier(bag),
            attention=attention,
            bag_feature=bag,
            instance_probs=probs,
        )


@register_model("mean_pool")
def mean_pool(in_dim: int, n_classes: int, **kwargs: Any) -> PoolingMIL:
    """Mean pooling of the embedded instances."""
    return PoolingMIL(in_dim, n_classes, mode="mean", **kwargs)


@register_model("max_pool")
def max_pool(in_dim: int, n_classes: int, **kwargs: Any) -> PoolingMIL:
    """Feature-wise max pooling of the embedded instances."""
    return PoolingMIL(in_dim, n_classes, mode="max", **kwargs)
