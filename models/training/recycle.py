"""The global recycle network of MHIM (journal version).

Random masking throws away most of a bag; the recycle network keeps what those
instances say about the whole slide. ``k`` global queries attend (multi-head
cross-attention) over the randomly masked hidden instances and produce ``k`` global
tokens, which join the kept instances in the student's aggregator
(``model.aggregate(h_kept, tokens=...)``). The queries are not learnt by gradient: they
follow the tokens they produce by an exponential moving average, so they drift towards
typical summaries of the slides. Used in training only; inference sees the whole bag.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GlobalRecycle(nn.Module):
    """Cross-attention of ``k`` EMA-updated global queries over masked instances.

    Parameters
    ----------
    dim : int
        Hidden dimension H of the model's instances.
    tokens : int
        k, number of global tokens.
    heads : int
        Attention heads (``dim`` need not divide by it: each head has ``dim // heads``
        or at least 16 channels).
    momentum : float
        EMA momentum of the queries (1.0 freezes them). The journal reference moves them
        slowly (0.9998-0.9999) so they settle on typical slide summaries.
    dropout : float
        Dropout on the attention weights (reference: 0.1).

    Defaults follow the journal reference: k = 1 token, 8 heads (64 channels each at
    H = 512), dropout 0.1, query momentum 0.9999.
    """

    queries: Tensor  # (k, H) buffer, registered in __init__

    def __init__(
        self,
        dim: int,
        tokens: int = 1,
        heads: int = 8,
        momentum: float = 0.9999,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.heads = heads
        self.head_dim = max(16, dim // heads)
        inner = self.head_dim * heads
        self.momentum = momentum
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        bound = math.sqrt(6.0 / (3 * 256 + dim))
        self.register_buffer("queries", torch.empty(tokens, dim).uniform_(-bound, bound))

    def forward(self, h_masked: Tensor) -> Tensor:
        """(M, H) masked hidden instances -> (k, H) global tokens.

        Standard multi-head cross-attention, ``softmax(q_h K_h^T / sqrt(d)) V_h`` per head,
        evaluated in an order that never projects the M instances: with bias-free key and
        value maps, ``q_h K_h^T = (q_h W_k,h) X^T`` and ``A V_h = (A X) W_v,h^T``. The cost
        is O(M H k heads) instead of O(M H^2), which matters as M is most of the bag.
        """
        n_tokens, dim = self.queries.shape
        # A copy: the EMA below updates the buffer in place, which autograd must not see.
        queries = self.queries.to(dtype=h_masked.dtype, copy=True)
        q = self.to_q(self.norm(queries)).view(n_tokens, self.heads, self.head_dim)
        w_k = self.to_k.weight.view(self.heads, self.head_dim, dim)
        w_v = self.to_v.weight.view(self.heads, self.head_dim, dim)
        x = self.norm(h_masked)
        q_in_x = q.transpose(0, 1) @ w_k  # (heads, k, H)
        weights = self.dropout(torch.softmax(q_in_x @ x.T / math.sqrt(self.head_dim), dim=-1))
        pooled = weights @ x  # (heads, k, H)
        out = pooled @ w_v.transpose(1, 2)  # (heads, k, head_dim)
        tokens = self.to_out(out.transpose(0, 1).reshape(n_tokens, -1))
        if self.training and self.momentum < 1.0:
            with torch.no_grad():
                self.queries.mul_(self.momentum).add_(
                    tokens.detach().to(self.queries.dtype), alpha=1.0 - self.momentum
                )
        return tokens
