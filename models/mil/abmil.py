"""ABMIL: attention-based deep MIL (Ilse et al., 2018), plain and gated attention.

The bag feature is the attention-weighted sum of the hidden instances,
``z = sum_i a_i h_i`` with ``a = softmax_i(w^T f(h_i))``, where ``f`` is ``tanh(V h)``
(plain) or ``tanh(V h) * sigmoid(U h)`` (gated). This is the ``AttentionMIL`` /
``GatedAttention`` backbone that MHIM-MIL trains as its "ABMIL" variant.
"""

from __future__ import annotations

from typing import Any

import torch
from slidescope.models.mil.base import (
    MILModel,
    MILOutput,
    check_choice,
    instance_probabilities,
    join_tokens,
    real_attention,
    require_instances,
)
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn


def instance_embedding(
    in_dim: int, hidden_dim: int, dropout: float, act: str = "relu"
) -> nn.Module:
    """The per-instance embedding every model shares: Linear + activation + dropout."""
    activation: nn.Module = nn.GELU() if act == "gelu" else nn.ReLU()
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), activation, nn.Dropout(dropout))


def xavier_init(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for every Linear layer (the reference's
    ``initialize_weights``)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class AttentionScore(nn.Module):
    """Unnormalised attention score of each instance, plain or gated.

    Parameters
    ----------
    hidden_dim : int
        Size H of an instance.
    attention_dim : int
        Size of the attention network's hidden layer.
    gated : bool
        Multiply the value branch by a sigmoid gate (Ilse et al.'s gated attention).
    dropout : float
        Dropout on the attention network's hidden layer.
    act : str
        Activation of the value branch: ``tanh`` (Ilse et al.) or ``relu`` (the MHIM-MIL
        reference code's ABMIL).
    bias : bool
        Biases in the attention network (the reference has none).
    """

    def __init__(
        self,
        hidden_dim: int,
        attention_dim: int,
        gated: bool,
        dropout: float,
        act: str = "tanh",
        bias: bool = True,
    ) -> None:
        super().__init__()
        activation: nn.Module = nn.ReLU() if act == "relu" else nn.Tanh()
        self.value = nn.Sequential(nn.Linear(hidden_dim, attention_dim, bias=bias), activation)
        self.gate = (
            nn.Sequential(nn.Linear(hidden_dim, attention_dim, bias=bias), nn.Sigmoid())
            if gated
            else None
        )
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(attention_dim, 1, bias=bias)

    def forward(self, h: Tensor) -> Tensor:
        """(N, H) -> (N,) raw scores (before the softmax over instances)."""
        a = self.value(h)
        if self.gate is not None:
            a = a * self.gate(h)
        return self.score(self.dropout(a)).squeeze(-1)


class ABMIL(MILModel):
    """Attention-based MIL with a linear bag classifier.

    Parameters
    ----------
    in_dim : int
        Feature dimension D of the instances.
    n_classes : int
        Number of classes C (or hazard bins for survival).
    hidden_dim : int
        Size H of the hidden instances and of the bag feature.
    attention_dim : int
        Size of the attention network's hidden layer (default H / 2).
    gated : bool
        Use gated attention.
    dropout : float
        Dropout after the instance embedding and inside the attention network.
    act : str
        Activation of the instance embedding, ``"relu"`` or ``"gelu"``.
    attention_act : str
        ``tanh`` or ``relu`` (value branch of the attention network).
    attention_bias : bool
        Biases in the attention network.
    attention_dropout : float or None
        Dropout inside the attention network (None: ``dropout``).
    init : str
        ``default`` (torch's) or ``xavier`` (the reference's xavier-normal, zero bias).

    Notes
    -----
    ``models.mil.reference.REFERENCE_KWARGS["abmil"]`` gives the MHIM-MIL reference
    code's ABMIL: 128-d bias-free ReLU attention without dropout, xavier init.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden_dim: int = 512,
        attention_dim: int | None = None,
        gated: bool = False,
        dropout: float = 0.25,
        act: str = "relu",
        attention_act: str = "tanh",
        attention_bias: bool = True,
        attention_dropout: float | None = None,
        init: str = "default",
    ) -> None:
        super().__init__(in_dim, n_classes, hidden_dim)
        check_choice("attention_act", attention_act, ("tanh", "relu"))
        check_choice("init", init, ("default", "xavier"))
        attention_dim = attention_dim or max(hidden_dim // 2, 1)
        self.embedding = instance_embedding(in_dim, hidden_dim, dropout, act)
        self.attention = AttentionScore(
            hidden_dim,
            attention_dim,
            gated,
            dropout if attention_dropout is None else attention_dropout,
            act=attention_act,
            bias=attention_bias,
        )
        self.classifier = nn.Linear(hidden_dim, n_classes)
        if init == "xavier":
            xavier_init(self)

    def embed_hidden(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        require_instances(h, self.arch or "abmil")
        n = h.shape[0]
        everything = join_tokens(h, tokens)
        weights = torch.softmax(self.attention(everything), dim=0)
        bag = weights @ everything
        pooled = weights[:n]
        return MILOutput(
            logits=self.classifier(bag),
            attention=real_attention(pooled, tokens),
            bag_feature=bag,
            instance_probs=instance_probabilities(self.classifier, pooled[:, None] * h),
        )


@register_model("abmil")
def abmil(in_dim: int, n_classes: int, **kwargs: Any) -> ABMIL:
    """ABMIL with plain (tanh) attention."""
    return ABMIL(in_dim, n_classes, gated=False, **kwargs)


@register_model("abmil_gated")
def abmil_gated(in_dim: int, n_classes: int, **kwargs: Any) -> ABMIL:
    """ABMIL with gated (tanh x sigmoid) attention."""
    return ABMIL(in_dim, n_classes, gated=True, **kwargs)
