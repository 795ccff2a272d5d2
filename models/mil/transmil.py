"""TransMIL: transformer-based correlated MIL (Shao et al., 2021).

The hidden instances are laid on a square grid (the sequence is completed by repeating
its first instances), a class token is prepended, and two Nyström self-attention layers
with a pyramid position encoding (PPEG: depthwise 7x7, 5x5 and 3x3 convolutions over the
grid) between them mix the instances; the class token after a final LayerNorm is the bag
feature.

What this module reports:

* ``attention``: the class token's exact softmax attention over the instances in the last
  layer, mean over heads (one query against every key: O(N)); the weights of grid copies
  are added to the instance they copy, and MHIM's global tokens are left out (rescaled);
* ``instance_probs``: the classifier applied to ``a_i · t_i``, where ``t_i`` is instance
  ``i``'s last-layer token after the final LayerNorm (the tokens the class token reads).
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
    check_size,
    instance_probabilities,
    join_tokens,
    require_instances,
)
from slidescope.models.mil.nystrom import NystromAttention, landmarks_for
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn


class TransLayer(nn.Module):
    """Pre-norm residual Nyström self-attention: ``x + attn(norm(x))``."""

    def __init__(self, dim: int, n_heads: int, n_landmarks: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = NystromAttention(
            dim, n_heads=n_heads, n_landmarks=n_landmarks, dropout=dropout
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attention(self.norm(x))

    def class_token_attention(self, x: Tensor) -> Tensor:
        """(n,) exact attention of token 0 over this layer's n input tokens."""
        return self.attention.exact_row(self.norm(x), 0)


class PPEG(nn.Module):
    """Pyramid position encoding generator: multi-scale depthwise convolutions on the grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv7 = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.conv5 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv3 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: Tensor, side: int) -> Tensor:
        """(1 + side², dim) class token + grid tokens -> same shape, position-encoded."""
        cls, grid = x[:1], x[1:]
        image = grid.T.reshape(1, -1, side, side)
        image = image + self.conv7(image) + self.conv5(image) + self.conv3(image)
        return torch.cat([cls, image.reshape(x.shape[1], -1).T])


class TransMIL(MILModel):
    """TransMIL with Nyström attention and PPEG.

    Parameters
    ----------
    in_dim : int
        Feature dimension D.
    n_classes : int
        Number of classes C.
    hidden_dim : int
        Token size H (TransMIL: 512; 256 is lighter and as accurate on most sets).
    n_heads : int
        Attention heads (H must be divisible by it).
    n_landmarks : int
        Nyström landmarks (default H / 2, as TransMIL).
    dropout : float
        Dropout after the instance embedding and on the attention output.
    act : str
        ``"relu"`` or ``"gelu"``.
    attention_dropout : float or None
        Dropout on the attention output (None: ``dropout``; the reference: 0.1).
    attention_layer : int
        Whose class-token attention scores the instances (MHIM's masking and the
        heatmaps): 1 the last layer, 0 the first (the reference's ``attn_layer=0``).

    Notes
    -----
    ``models.mil.reference.REFERENCE_KWARGS["transmil"]`` gives the MHIM-MIL reference
    code's TransMIL: 512-d tokens, 256 landmarks, attention dropout 0.1.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden_dim: int = 256,
        n_heads: int = 8,
        n_landmarks: int | None = None,
        dropout: float = 0.25,
        act: str = "relu",
        attention_dropout: float | None = None,
        attention_layer: int = 1,
    ) -> None:
        super().__init__(in_dim, n_classes, hidden_dim)
        check_size("n_heads", n_heads)
        if hidden_dim % n_heads:
            raise ModelSettingError(
                f"hidden_dim ({hidden_dim}) must be divisible by n_heads ({n_heads})"
            )
        if attention_layer not in (0, 1):
            raise ModelSettingError(f"attention_layer must be 0 or 1, got {attention_layer!r}")
        landmarks = n_landmarks or landmarks_for(hidden_dim)
        check_size("n_landmarks", landmarks)
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.attention_layer = attention_layer
        self.embedding = instance_embedding(in_dim, hidden_dim, dropout, act)
        self.cls_token = nn.Parameter(torch.randn(1, hidden_dim) * 0.02)
        self.layer1 = TransLayer(hidden_dim, n_heads, landmarks, attention_dropout)
        self.position = PPEG(hidden_dim)
        self.layer2 = TransLayer(hidden_dim, n_heads, landmarks, attention_dropout)
        self.norm = nn.LayerNorm(hidden_dim)
        self.classifier = nn.Linear(hidden_dim, n_classes)

    def embed_hidden(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        require_instances(h, self.arch or "transmil")
        n = h.shape[0]
        everything = join_tokens(h, tokens)
        m = everything.shape[0]
        side = math.ceil(math.sqrt(m))
        extra = side * side - m
        # TransMIL completes the square grid by repeating the first instances.
        grid = torch.cat([everything, everything[:extra]]) if extra else everything
        x = torch.cat([self.cls_token.to(h), grid])
        if self.attention_layer == 0:
            row = self.layer1.class_token_attention(x)[1:]  # over the grid tokens
        x = self.layer1(x)
        x = self.position(x, side)
        if self.attention_layer == 1:
            row = self.layer2.class_token_attention(x)[1:]
        x = self.norm(self.layer2(x))

        weights = row[:m]
        if extra:
            weights = weights.index_add(0, torch.arange(extra, device=h.device), row[m:])
        attention = weights[:n]
        attention = attention / attention.sum().clamp_min(torch.finfo(h.dtype).tiny)
        bag = x[0]
        instance_tokens = x[1 : 1 + n]
        return MILOutput(
            logits=self.classifier(bag),
            attention=attention,
            bag_feature=bag,
            instance_probs=instance_probabilities(
                self.classifier, attention[:, None] * instance_tokens
            ),
        )


@register_model("transmil")
def transmil(in_dim: int, n_classes: int, **kwargs: Any) -> TransMIL:
    """TransMIL (two Nyström layers, PPEG, class token)."""
    return TransMIL(in_dim, n_classes, **kwargs)
